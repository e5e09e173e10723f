#!/usr/bin/env python3
"""Writes manifests/relevance-seed.jsonl: sentences labeled 1 (describes the music) or 0 (does not).

The seed set is the project's own: hand-written sentences of both kinds plus sentences composed
from templates with a fixed seed, so the file (and the model trained on it) are reproducible.
Usage: scripts/make-relevance-seed.py > manifests/relevance-seed.jsonl
"""
import json
import random

rng = random.Random(20261125)

HAND_POSITIVE = [
    "A slow, melancholic piano piece with soft strings in the background.",
    "The song features a driving bassline, punchy drums and distorted electric guitars.",
    "Female vocals float over a warm synth pad and a gentle acoustic guitar.",
    "This is an upbeat dance track with four-on-the-floor kick drums and bright synth stabs.",
    "A lo-fi hip hop beat with dusty drums, vinyl crackle and a mellow Rhodes piano.",
    "The orchestra swells into a dramatic brass fanfare before the strings return.",
    "Fast tempo, aggressive screamed vocals and blast beats: this is extreme metal.",
    "A solo cello plays a sad melody in a minor key.",
    "The recording is of poor quality, with a muffled mix and audible hiss.",
    "Jazzy chords on a muted trumpet over brushed drums and an upright bass.",
    "The track builds slowly with layered ambient textures and no percussion.",
    "A cheerful ukulele strums along with whistling and handclaps.",
    "Heavy 808 bass, trap hi-hats and auto-tuned male rap vocals.",
    "A choir sings in harmony, accompanied by a pipe organ in a large reverberant hall.",
    "The tempo is around 120 BPM and the groove is funky, led by slap bass.",
    "Traditional Irish fiddle and tin whistle play a lively reel.",
    "An electronic track with glitchy percussion, arpeggiated synths and a deep sub bass.",
    "The singer has a raspy voice and sings a country ballad with pedal steel guitar.",
    "Reggae rhythm with offbeat guitar skanks and a heavy dub bassline.",
    "Soft bossa nova guitar and gentle percussion create a relaxing atmosphere.",
    "The piece is a baroque harpsichord sonata with intricate counterpoint.",
    "A marching band plays with snare drums, tubas and clarinets.",
    "Dreamy shoegaze guitars drenched in reverb and distant vocals.",
    "This instrumental has a cinematic feel, with taiko drums and epic strings.",
    "The drummer plays a complex odd-time groove while the keyboards solo.",
    "A quiet lullaby sung by a woman with a music box in the background.",
    "Bluesy slide guitar over a shuffle rhythm.",
    "The mood is dark and tense, with low drones and dissonant strings.",
    "A flamenco guitarist plays rapid rasgueado strums with palmas clapping.",
    "Energetic punk rock with shouted choruses and fast power chords.",
]
HAND_NEGATIVE = [
    "Subscribe to my channel for more videos every week!",
    "Follow us on Instagram and Twitter for tour updates.",
    "Download the full album on iTunes and Spotify now.",
    "All rights reserved, no copyright infringement intended.",
    "Thanks for watching, don't forget to like and share.",
    "Tour dates: Berlin, Paris, London and Madrid this summer.",
    "Merch is available in our online store.",
    "I listened to this on my way to work this morning.",
    "Who is watching this in 2024?",
    "Uploaded by a fan, the original video was removed.",
    "Check out my other playlist for more.",
    "The band was formed in 1998 in a small town in Ohio.",
    "He signed a record deal with a major label in 2005.",
    "My grandmother used to play this at every family dinner.",
    "Written and produced by John Smith, mastered at Studio 9.",
    "Please read the description before commenting.",
    "This video is for educational purposes only.",
    "The album sold over a million copies worldwide.",
    "Link to the lyrics in the comments below.",
    "I can't believe it has been ten years already.",
    "Happy birthday to my best friend, this one's for you.",
    "Contact us for business inquiries at the address on our website.",
    "Part two will be uploaded next Friday.",
    "The concert was cancelled due to bad weather.",
    "First comment, love from Brazil!",
    "Director: Jane Doe. Editor: Tom Brown. Camera: Ann Lee.",
    "Available now on all streaming platforms.",
    "We are giving away free tickets, enter the contest.",
    "The music video was filmed in Iceland last winter.",
    "Turn on notifications so you never miss an upload.",
]

INSTRUMENTS = ["piano", "acoustic guitar", "electric guitar", "violin", "cello", "synthesizer", "drums", "bass guitar",
               "saxophone", "trumpet", "flute", "organ", "harp", "strings", "brass section", "choir", "drum machine",
               "banjo", "accordion", "marimba", "clarinet", "sitar", "tabla", "harmonica", "ukulele", "timpani"]
MOODS = ["sad", "happy", "calm", "energetic", "dark", "uplifting", "melancholic", "dreamy", "aggressive", "romantic",
         "peaceful", "tense", "playful", "nostalgic", "epic", "relaxing", "haunting", "joyful"]
GENRES = ["jazz", "rock", "pop", "classical", "hip hop", "techno", "house", "folk", "country", "blues", "metal",
          "reggae", "ambient", "funk", "soul", "disco", "punk", "r&b", "trance", "drum and bass", "bossa nova", "gospel"]
TEMPOS = ["slow", "fast", "mid-tempo", "upbeat", "laid-back", "driving", "sluggish", "brisk"]
VOICES = ["a female singer", "a male vocalist", "a children's choir", "a deep baritone voice", "soft whispered vocals",
          "a rapper", "an operatic soprano", "harmonized backing vocals"]
POS_TEMPLATES = [
    "A {tempo} {genre} song with {instrument} and {instrument2}.",
    "The {instrument} plays a {mood} melody over {tempo} {instrument2}.",
    "This {mood} {genre} track features {voice} and {instrument}.",
    "{voice_cap} sings over a {tempo} groove of {instrument} and {instrument2}.",
    "The mood is {mood} and the {instrument} leads the arrangement.",
    "An instrumental {genre} piece, {tempo} and {mood}, built around {instrument}.",
    "You can hear {instrument}, {instrument2} and {voice} in this {genre} recording.",
    "The {genre} beat is {tempo}, with a {mood} feel and prominent {instrument}.",
    "It starts with solo {instrument} before the {instrument2} comes in.",
    "A {mood} atmosphere created by layered {instrument} and {instrument2}.",
]
PLACES = ["Berlin", "Tokyo", "Chicago", "Lagos", "Lisbon", "Seoul", "Toronto", "Mexico City", "Oslo", "Nairobi"]
YEARS = [str(y) for y in range(1965, 2025)]
NEG_TEMPLATES = [
    "Recorded live in {place} in {year}.",
    "Don't forget to subscribe and hit the bell icon!",
    "Follow {handle} on all social media.",
    "Buy tickets for the {place} show at our website.",
    "This upload is from {year}, the quality was the best we could find.",
    "Shoutout to everyone from {place} watching this.",
    "The label released it on {year} as a limited edition.",
    "Visit {url} for more information.",
    "Copyright {year} {label}. All rights reserved.",
    "I first heard this at a party in {place} back in {year}.",
    "Comment your favourite part below!",
    "Official video, directed by {name}.",
    "Stream the new single everywhere on {weekday}.",
    "Thank you for {number} subscribers!",
    "{name} will be signing records in {place} on {weekday}.",
]
LABELS = ["Polar Records", "Sunset Music Group", "Blue Door Entertainment", "Northwind Audio"]
NAMES = ["Alex Carter", "Maria Gomez", "Kenji Sato", "Ada Obi", "Lena Novak"]

def fill(t):
    instr = rng.sample(INSTRUMENTS, 2)
    voice = rng.choice(VOICES)
    return t.format(tempo=rng.choice(TEMPOS), genre=rng.choice(GENRES), instrument=instr[0], instrument2=instr[1],
                    mood=rng.choice(MOODS), voice=voice, voice_cap=voice[0].upper() + voice[1:],
                    place=rng.choice(PLACES), year=rng.choice(YEARS), handle="@" + rng.choice(["thebandofficial", "djmix", "musiclover22"]),
                    url=rng.choice(["www.example.com", "https://example.org/tour"]), label=rng.choice(LABELS),
                    name=rng.choice(NAMES), weekday=rng.choice(["Monday", "Friday", "Sunday"]),
                    number=rng.choice(["10k", "100,000", "one million"]))

rows = [(s, 1) for s in HAND_POSITIVE] + [(s, 0) for s in HAND_NEGATIVE]
seen = set(s for s, _ in rows)
while len([r for r in rows if r[1] == 1]) < 300:
    s = fill(rng.choice(POS_TEMPLATES))
    if s not in seen:
        seen.add(s); rows.append((s, 1))
while len([r for r in rows if r[1] == 0]) < 300:
    s = fill(rng.choice(NEG_TEMPLATES))
    if s not in seen:
        seen.add(s); rows.append((s, 0))
rng.shuffle(rows)
for s, label in rows:
    print(json.dumps({"text": s, "label": label}, ensure_ascii=False))
