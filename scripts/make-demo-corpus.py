#!/usr/bin/env python3
"""Generates mulan's labeled demo corpus: real instrument audio with known attributes, messy weak text
about it, and the ground truth kept apart from both.

Every track is composed here as a Standard MIDI File (instrument family, tempo, mode, drums,
loudness and key drawn per track), rendered with FluidSynth and one of several General MIDI
soundfonts (chosen per track, balanced within each family; --soundfonts), with the production
variation of a real collection (velocity curve, reverb and chorus, EQ, level), and encoded with the
ffmpeg CLI in a rotation of codecs, sample rates and channel counts. The weak text (tags,
descriptions, playlists, AudioSet label ids) is written from the same attributes the way people write
it: synonyms, misspellings, drop-out, a little label noise and plenty of junk. A few broken inputs (silence, a too-short file, a truncated download, a missing file) show
ingest's failure recording. docs/demo-corpus.md describes the files.

Usage: scripts/make-demo-corpus.py --out DIR [--tracks N] [--seed S] [--soundfonts A,B]
                                   [--eval-split test|all] [--jobs J]

Standard library only. The output depends only on --tracks, --seed, --soundfonts and --eval-split
(and on the installed FluidSynth, soundfonts and FFmpeg): --jobs changes the speed, never a byte. A
re-run with the same arguments does nothing; other arguments, or another version of this script,
regenerate the folder (built in DIR.tmp, then renamed).
"""
import argparse
import concurrent.futures
import csv
import ctypes
import ctypes.util
import hashlib
import json
import os
import random
import re
import shutil
import struct
import subprocess
import sys
import threading
import time

VERSION = 3
# The General MIDI soundfonts a track can be rendered with: name -> (file, Debian package). The demo
# trains on fluidr3 and musescore; csound is kept unseen, for the held-out evaluation corpus.
SOUNDFONTS = {
    "fluidr3": ("/usr/share/sounds/sf2/FluidR3_GM.sf2", "fluid-soundfont-gm"),
    "musescore": ("/usr/share/sounds/sf3/MuseScore_General_Full.sf3", "musescore-general-soundfont"),
    "csound": ("/usr/share/sounds/sf2/sf_GMbank.sf2", "csound-soundfont"),
}
DEFAULT_SOUNDFONTS = ["fluidr3", "musescore"]
RENDER_RATE = 44100
# Loudness: velocities and FluidSynth's gain (20·log10(4) = 12 dB apart) shape the sound; the level
# correction after rendering then puts each track at its class's RMS level (±1.5 dB), whatever its
# instrument's level in the soundfont, without letting peaks pass the ceiling.
FLUIDSYNTH_GAIN = {"loud": 0.8, "quiet": 0.2}
TARGET_RMS_DB = {"loud": -17.0, "quiet": -29.0}
PEAK_CEILING_DB = -0.5
TICKS = 480                                      # per quarter note
BAR = 4 * TICKS                                  # every piece is in 4/4

FAMILIES = ["piano", "guitar", "strings", "brass", "flute", "organ", "bass", "synth"]
# General MIDI programs (0-based) per family.
PROGRAMS = {"piano": [0, 1], "guitar": [24, 25], "strings": [48, 49], "brass": [61], "flute": [73],
            "organ": [19, 16], "bass": [33, 34], "synth": [81, 80]}
# How the accompaniment is played, per family (the bass family plays a bass line instead).
STYLES = {"piano": ["block", "arpeggio", "alberti"], "guitar": ["arpeggio", "strum"],
          "strings": ["sustain", "pulse"], "brass": ["sustain", "stabs"], "flute": ["sustain", "arpeggio"],
          "organ": ["sustain", "block"], "bass": ["bassline"], "synth": ["arpeggio", "stabs", "sustain"]}
TEMPI = {"slow": (60, 80), "medium": (95, 115), "fast": (130, 160)}
NOTE_NAMES = ["C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B"]
SCALES = {"major": [0, 2, 4, 5, 7, 9, 11], "minor": [0, 2, 3, 5, 7, 8, 10]}
# Progressions as scale degrees (0 = tonic); every piece starts and ends on the tonic chord, and
# minor progressions use the major V (harmonic minor) often, so the mode is audible.
PROGRESSIONS = {
    "major": [[0, 4, 5, 3], [0, 3, 4, 0], [0, 5, 3, 4], [0, 3, 5, 4], [0, 4, 3, 4], [0, 2, 3, 4]],
    "minor": [[0, 5, 2, 6], [0, 3, 4, 0], [0, 6, 5, 4], [0, 3, 6, 2], [0, 5, 3, 4], [0, 3, 0, 4]],
}
ROMAN = {"major": ["I", "ii", "iii", "IV", "V", "vi", "vii°"], "minor": ["i", "ii°", "III", "iv", "V", "VI", "VII"]}
# AudioSet ontology ids (manifests/audioset-music-ontology.json holds their classes).
ASET_MUSIC = "/m/04rlf"                          # Music
ASET_FAMILY = {
    "piano": ["/m/05r5c"],                       # Piano
    "guitar": ["/m/0342h"],                      # Guitar
    "strings": ["/m/0l14_3", "/m/02qmj0d"],      # Bowed string instrument, String section
    "brass": ["/m/01kcd"],                       # Brass instrument
    "flute": ["/m/0l14j_"],                      # Flute
    "organ": ["/m/013y1f"],                      # Organ
    "bass": ["/m/018vs"],                        # Bass guitar
    "synth": ["/m/0l14qv"],                      # Synthesizer
}
ASET_EXTRA = {24: "/m/042v_gx", 25: "/m/042v_gx", 16: "/m/03gvt"}  # Acoustic guitar; Hammond organ
ASET_DRUM_KIT = "/m/02hnl"                       # Drum kit
EVAL_TAGS = FAMILIES + ["slow", "fast", "major", "minor", "drums", "loud", "quiet"]

# Output encodings and their shares of the tracks (uncompressed WAV is kept rare and small: it is
# most of the corpus's bytes otherwise).
CODEC_SHARES = {"ogg": 5, "mp3": 5, "opus": 4, "flac": 4, "wav": 2}
CODECS = {
    "ogg": {"ext": "ogg", "rates": [44100, 48000, 32000, 22050], "args": lambda r: ["-c:a", "libvorbis", "-q:a", r.choice(["3", "4", "5"])]},
    "mp3": {"ext": "mp3", "rates": [44100, 48000, 32000], "args": lambda r: ["-c:a", "libmp3lame", "-b:a", r.choice(["128k", "160k", "192k"])]},
    "flac": {"ext": "flac", "rates": [44100, 48000, 32000, 22050], "args": lambda r: ["-c:a", "flac", "-sample_fmt", "s16"]},
    "wav": {"ext": "wav", "rates": [22050, 32000, 44100], "args": lambda r: ["-c:a", "pcm_s16le"]},
    "opus": {"ext": "opus", "rates": [48000], "args": lambda r: ["-c:a", "libopus", "-b:a", r.choice(["64k", "96k", "128k"])]},
}


class Track:
    """One track's drawn attributes (the ground truth) and how it is encoded."""

    def __init__(self, **fields):
        self.__dict__.update(fields)

    @property
    def key_name(self):
        return f"{NOTE_NAMES[self.tonic]} {self.mode}"


# ---------------------------------------------------------------------------------------------
# Drawing the plan


def balanced(rng, values, n):
    """n values, each of `values` n/len times (±1), in random order."""
    order = list(values)
    rng.shuffle(order)
    out = [order[i % len(order)] for i in range(n)]
    rng.shuffle(out)
    return out


def draw_plan(n, seed):
    """The tracks (attributes, ids, splits, encodings) and the broken inputs, from the seed alone."""
    rng = random.Random(f"demo-corpus/{seed}/plan")
    families = balanced(rng, FAMILIES, n)
    tempos = balanced(rng, ["slow", "medium", "fast"], n)
    modes = balanced(rng, ["major", "minor"], n)
    drums = balanced(rng, [True, False], n)
    loudness = balanced(rng, ["loud", "quiet"], n)
    codecs = balanced(rng, [c for c, share in CODEC_SHARES.items() for _ in range(share)], n)
    # Track ids are a random numbering, so the broken inputs sit among the others.
    numbers = list(range(1, n + 5))
    rng.shuffle(numbers)
    tracks = []
    for i in range(n):
        lo, hi = TEMPI[tempos[i]]
        codec = codecs[i]
        track_id = f"trk-{numbers[i]:04d}"
        tracks.append(Track(
            index=i, track_id=track_id, family=families[i], program=rng.choice(PROGRAMS[families[i]]),
            tempo=tempos[i], bpm=rng.randint(lo, hi), mode=modes[i], tonic=rng.randrange(12),
            drums=drums[i], loudness=loudness[i], duration=round(rng.uniform(35, 90), 1),
            style=rng.choice(STYLES[families[i]]), codec=codec,
            sample_rate=rng.choice(CODECS[codec]["rates"]), channels=rng.choice([1, 2, 2]),
            codec_args=CODECS[codec]["args"](rng), level_jitter=round(rng.uniform(-1.5, 1.5), 2),
            path=f"audio/{track_id}.{CODECS[codec]['ext']}", split=None, broken=None))
    # Splits: ~15% test per family (at least one, so every family is tested), then ~10% valid taken
    # round-robin over the families, the rest train.
    remaining = {}
    for family in FAMILIES:
        members = [t for t in tracks if t.family == family]
        rng.shuffle(members)
        n_test = max(1, int(0.15 * len(members) + 0.5)) if members else 0
        for k, t in enumerate(members):
            t.split = "test" if k < n_test else "train"
        remaining[family] = members[n_test:]
    n_valid = max(1, int(0.10 * n + 0.5))
    order = list(FAMILIES)
    rng.shuffle(order)
    while n_valid > 0 and any(remaining.values()):
        for family in order:
            if n_valid > 0 and len(remaining[family]) > 1:
                remaining[family].pop().split = "valid"
                n_valid -= 1
        if all(len(r) <= 1 for r in remaining.values()):
            break
    # Broken inputs: a too-short render, a truncated mp3 download, digital silence, a missing file.
    broken = []
    for k, kind in enumerate(["too-short", "truncated", "silent", "missing-file"]):
        track_id = f"trk-{numbers[n + k]:04d}"
        family = rng.choice(FAMILIES)
        lo, hi = TEMPI["medium"]
        codec, ext = {"too-short": ("ogg", "ogg"), "truncated": ("mp3", "mp3"), "silent": ("flac", "flac"),
                      "missing-file": ("wav", "wav")}[kind]
        broken.append(Track(
            index=n + k, track_id=track_id, family=family, program=rng.choice(PROGRAMS[family]), tempo="medium",
            bpm=rng.randint(lo, hi), mode=rng.choice(["major", "minor"]), tonic=rng.randrange(12),
            drums=rng.random() < 0.5, loudness="loud", duration={"too-short": 12.0, "truncated": 60.0}.get(kind, 35.0),
            style=rng.choice(STYLES[family]), codec=codec, sample_rate=44100, channels=2,
            codec_args=CODECS[codec]["args"](rng), level_jitter=0.0, path=f"audio/{track_id}.{ext}",
            split="train", broken=kind))
    return tracks, broken


def draw_sound(tracks, broken, seed, soundfonts, production="varied"):
    """Per track: the soundfont (balanced within each family, so a soundfont says nothing about the
    family) and how this track was produced — velocity curve, reverb and chorus, EQ — the variation
    a real collection has. From its own random stream, so the attributes drawn by draw_plan do not
    depend on the soundfonts chosen."""
    rng = random.Random(f"demo-corpus/{seed}/sound")
    for family in FAMILIES:
        members = [t for t in tracks if t.family == family]
        for t, sf in zip(members, balanced(rng, soundfonts, len(members))):
            t.soundfont = sf
    for t in broken:
        t.soundfont = rng.choice(soundfonts)
    if production == "plain":
        # No production variation: the notes as composed, FluidSynth's default effects, no EQ, and the
        # registers of version 1 (what tests that need an easy corpus use).
        for t in tracks + broken:
            t.velocity_curve, t.reverb_send, t.chorus_send, t.reverb, t.chorus, t.eq = 1.0, None, None, {}, {}, None
        return
    for t in tracks + broken:
        # Velocity curve: velocity' = 127·(velocity/127)^curve (< 1 brighter and louder, > 1 softer).
        t.velocity_curve = round(rng.uniform(0.65, 1.5), 2)
        # Reverb and chorus sends (MIDI CC 91 and 93, every channel) and the effects' settings.
        t.reverb_send = 0 if rng.random() < 0.15 else rng.randint(15, 110)
        t.chorus_send = 0 if rng.random() < 0.4 else rng.randint(10, 90)
        t.reverb = {"room-size": round(rng.uniform(0.1, 0.95), 2), "damp": round(rng.uniform(0.0, 0.8), 2),
                    "width": round(rng.uniform(0.3, 1.0), 2), "level": round(rng.uniform(0.3, 1.0), 2)}
        t.chorus = {"nr": rng.randint(2, 5), "level": round(rng.uniform(0.5, 3.0), 2),
                    "speed": round(rng.uniform(0.2, 1.2), 2), "depth": round(rng.uniform(2.0, 14.0), 1)}
        # EQ, as a mastering chain or a cheap playback chain would leave it: low and high shelves, one
        # peaking band, and on some tracks a high-pass or a low-pass (any family).
        eq = [f"bass=g={rng.uniform(-6, 6):.1f}:f={rng.randint(80, 250)}",
              f"treble=g={rng.uniform(-6, 6):.1f}:f={rng.randint(2500, 7000)}",
              f"equalizer=f={round(300 * 10 ** rng.uniform(0, 1))}:t=o:w={rng.uniform(0.7, 2.0):.1f}:g={rng.uniform(-5, 5):.1f}"]
        cut = rng.random()
        if cut < 0.2:
            eq.append(f"highpass=f={rng.randint(40, 120)}")
        elif cut < 0.4:
            eq.append(f"lowpass=f={rng.randint(5000, 12000)}")
        t.eq = ",".join(eq)


# ---------------------------------------------------------------------------------------------
# Composing: a Standard MIDI File per track


class MidiTrack:
    """Notes and controller events of one format-0 MIDI file."""

    def __init__(self):
        self.notes = []    # (start, end, channel, pitch, velocity)
        self.events = []   # (tick, order, bytes)

    def note(self, start, length, channel, pitch, velocity):
        if 0 <= pitch <= 127 and length > 0:
            self.notes.append((max(0, start), max(0, start) + max(1, length), channel, pitch,
                               max(1, min(127, int(velocity)))))

    def control(self, tick, channel, number, value):
        self.events.append((max(0, tick), 1, bytes([0xB0 | channel, number, value])))

    def program(self, channel, program):
        self.events.append((0, 1, bytes([0xC0 | channel, program])))

    def meta(self, tick, kind, data):
        self.events.append((tick, 0, bytes([0xFF, kind]) + vlq(len(data)) + data))

    def encode(self):
        # A note never overlaps the next note of the same pitch on its channel (FluidSynth would
        # end the wrong one).
        notes = sorted(self.notes, key=lambda n: (n[2], n[3], n[0]))
        events = list(self.events)
        for k, (start, end, ch, pitch, vel) in enumerate(notes):
            if k + 1 < len(notes) and notes[k + 1][2] == ch and notes[k + 1][3] == pitch:
                end = min(end, notes[k + 1][0])
            if end <= start:
                continue
            events.append((start, 2, bytes([0x90 | ch, pitch, vel])))
            events.append((end, -1, bytes([0x80 | ch, pitch, 0])))
        events.sort(key=lambda e: (e[0], e[1], e[2]))
        body = bytearray()
        now = 0
        for tick, _, data in events:
            body += vlq(tick - now) + data
            now = tick
        body += vlq(0) + b"\xff\x2f\x00"
        return (b"MThd" + struct.pack(">IHHH", 6, 0, 1, TICKS)
                + b"MTrk" + struct.pack(">I", len(body)) + bytes(body))


def vlq(value):
    out = [value & 0x7F]
    value >>= 7
    while value:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    return bytes(reversed(out))


def key_signature(tonic, mode):
    major_tonic = tonic if mode == "major" else (tonic + 3) % 12
    sharps = {0: 0, 7: 1, 2: 2, 9: 3, 4: 4, 11: 5, 6: 6, 5: -1, 10: -2, 3: -3, 8: -4, 1: -5}[major_tonic]
    return struct.pack(">bB", sharps, 0 if mode == "major" else 1)


class Harmony:
    """Pitches of the key: scale degrees (0 = tonic, may be negative or above 6) to MIDI notes."""

    def __init__(self, tonic, mode):
        self.tonic, self.mode, self.scale = tonic, mode, SCALES[mode]

    def pitch(self, degree, octave_tonic, raised=False):
        p = octave_tonic + 12 * (degree // 7) + self.scale[degree % 7]
        # Harmonic minor: the leading tone over the dominant.
        return p + 1 if raised and self.mode == "minor" and degree % 7 == 6 else p

    def chord_pcs(self, root):
        pcs = [(self.tonic + self.pitch(root + k, 0, raised=(root % 7 == 4))) % 12 for k in (0, 2, 4)]
        return pcs

    def tonic_near(self, midi):
        """The tonic's MIDI note nearest below-or-at `midi`."""
        return midi - ((midi - self.tonic) % 12)


def voicing(pcs, center):
    """Chord pitch classes placed around `center`, ascending."""
    notes = []
    for pc in pcs:
        p = center - 6 + ((pc - (center - 6)) % 12)
        notes.append(p)
    return sorted(notes)


def compose(t):
    """The MIDI file of track t."""
    rng = random.Random(f"demo-corpus/{t.track_id}/{t.index}/{t.family}/{t.bpm}/{t.tonic}/music")
    h = Harmony(t.tonic, t.mode)
    m = MidiTrack()
    m.meta(0, 0x51, struct.pack(">I", round(60_000_000 / t.bpm))[1:])
    m.meta(0, 0x58, bytes([4, 2, 24, 8]))
    m.meta(0, 0x59, key_signature(t.tonic, t.mode))
    loud = t.loudness == "loud"
    base_vel = rng.randint(96, 112) if loud else rng.randint(40, 54)
    for ch in (0, 1):
        m.program(ch, t.program)
        m.control(0, ch, 7, 100)
        m.control(0, ch, 10, 64 if ch == 0 else rng.randint(52, 76))
    if t.drums:
        m.control(0, 9, 7, 100)
    if t.reverb_send is not None:
        for ch in (0, 1, 9) if t.drums else (0, 1):
            m.control(0, ch, 91, t.reverb_send)
            m.control(0, ch, 93, t.chorus_send)

    bar_s = 240.0 / t.bpm
    bars = max(4, int((t.duration - 1.5) / bar_s))
    progression = rng.choice(PROGRESSIONS[t.mode])
    t.progression = "–".join(ROMAN[t.mode][d] for d in progression)
    # At fast tempi, each chord is held two bars now and then.
    bars_per_chord = 2 if t.tempo == "fast" and rng.random() < 0.5 else 1
    chords = [progression[(b // bars_per_chord) % len(progression)] for b in range(bars)]
    chords[-2:] = [4, 0]  # a V–I cadence at the end
    intro = rng.choice([0, 1, 2]) if bars > 8 else 0

    def humanize(tick):
        return tick + rng.randint(-6, 6) if tick > 0 else tick

    def vel(v):
        return max(1, min(127, v + rng.randint(-6, 6)))

    if t.family == "bass":
        bass_line(m, rng, h, t, chords, base_vel, humanize, vel)
    else:
        center = rng.randint(45, 66) if t.eq is not None else rng.randint(50, 62)
        accompany(m, rng, h, t, chords, center, base_vel - (8 if loud else 4), humanize, vel)
        melody(m, rng, h, t, chords, intro, base_vel + (6 if loud else 4), humanize, vel)
    if t.drums:
        drum_part(m, rng, t, bars, intro, loud, humanize)
    # The track's velocity curve, on every note.
    if t.velocity_curve != 1.0:
        m.notes = [(s, e, ch, p, max(1, min(127, round(127 * (v / 127) ** t.velocity_curve)))) for s, e, ch, p, v in m.notes]
    return m.encode()


def accompany(m, rng, h, t, chords, center, base, humanize, vel):
    style = t.style
    pedal = t.family in ("piano", "guitar") and style in ("arpeggio", "alberti")
    last = len(chords) - 1
    for b, root in enumerate(chords):
        start = b * BAR
        notes = voicing(h.chord_pcs(root), center)
        low = notes[0] - 12 if notes[0] - 12 >= 36 else notes[0]
        if b == last:  # the final chord, held
            for p in sorted(set([low] + notes)):
                m.note(humanize(start), BAR - 30, 0, p, vel(base))
            continue
        if pedal:
            m.control(start + 5, 0, 64, 127)
            m.control(start + BAR - 20, 0, 64, 0)
        if style == "sustain":
            for p in sorted(set([low] + notes)):
                m.note(start + (0 if b == 0 else rng.randint(0, 8)), BAR - 20, 0, p, vel(base - 4))
        elif style in ("block", "stabs", "pulse"):
            if style == "block":
                beats = {"slow": [0, 2], "medium": [0, 1, 2, 3], "fast": [0, 1.5, 2, 3]}[t.tempo]
                length = 0.9
            elif style == "stabs":
                beats = rng.choice([[0, 1.5, 2.5], [0.5, 1.5, 2.5, 3.5], [0, 0.75, 2, 2.75], [0, 1, 2.5, 3.5]])
                length = 0.35
            else:
                beats = [k * 0.5 for k in range(8)]
                length = 0.45
            for k, beat in enumerate(beats):
                nxt = beats[k + 1] if k + 1 < len(beats) else 4
                dur = int(min(length, nxt - beat) * TICKS) if style != "block" else int((nxt - beat) * TICKS * length)
                accent = 8 if beat == int(beat) and int(beat) % 2 == 0 else 0
                for p in ([low] if beat == 0 else []) + notes:
                    m.note(humanize(start + int(beat * TICKS)), dur, 0, p, vel(base + accent))
        elif style == "arpeggio":
            seq = [low] + notes + [notes[-1] + 12 if notes[-1] + 12 <= 84 else notes[1]]
            pattern = [0, 1, 2, 3, 4, 3, 2, 1] if rng.random() < 0.5 else [0, 2, 1, 3, 4, 3, 1, 2]
            step = TICKS // 2 if t.tempo != "slow" else TICKS // 2
            for k in range(BAR // step):
                m.note(humanize(start + k * step), step * 2, 0, seq[pattern[k % len(pattern)]],
                       vel(base + (6 if k % 4 == 0 else 0)))
        elif style == "alberti":
            step = TICKS // 4 if t.tempo == "slow" else TICKS // 2
            order = [0, 2, 1, 2]
            m.note(start, BAR - 20, 0, low, vel(base))
            for k in range(BAR // step):
                m.note(humanize(start + k * step), step, 0, notes[order[k % 4]], vel(base - 4 + (5 if k % 4 == 0 else 0)))
        elif style == "strum":
            rhythm = {"slow": [(0, 1), (2, 1)], "medium": [(0, 1), (1.5, -1), (2, 1), (3, 1), (3.5, -1)],
                      "fast": [(0, 1), (1, 1), (1.5, -1), (2.5, -1), (3, 1), (3.5, -1)]}[t.tempo]
            strings = [low] + notes
            for k, (beat, direction) in enumerate(rhythm):
                nxt = rhythm[k + 1][0] if k + 1 < len(rhythm) else 4
                order = strings if direction > 0 else list(reversed(strings))
                spread = rng.randint(12, 24)
                for j, p in enumerate(order):
                    m.note(humanize(start + int(beat * TICKS)) + j * spread, int((nxt - beat) * TICKS) - j * spread, 0,
                           p, vel(base - (0 if direction > 0 else 10)))


def melody(m, rng, h, t, chords, intro, base, humanize, vel):
    low = rng.randint(55, 74) if t.eq is not None else rng.randint(60, 70)
    high = low + rng.randint(12, 16)
    octave_tonic = h.tonic_near(low)
    degrees = [d for d in range(-7, 22) if low <= h.pitch(d, octave_tonic) <= high]
    rhythms = {
        "slow": [[4, 4], [2, 2, 4], [3, 1, 4], [2, 2, 2, 2], [6, 2], [8], [4, 2, 2]],
        "medium": [[2, 2, 2, 2], [1, 1, 2, 2, 2], [3, 1, 2, 2], [2, 1, 1, 4], [4, 2, 2], [2, 2, 4]],
        "fast": [[1, 1, 1, 1, 2, 2], [2, 2, 1, 1, 2], [1, 1, 2, 1, 1, 2], [2, 2, 2, 2], [3, 3, 2], [2, 1, 1, 2, 2]],
    }[t.tempo]
    eighth = TICKS // 2
    motif = [rng.choice(rhythms) for _ in range(2)]
    current = rng.choice([d for d in degrees if d % 7 in (0, 2, 4)] or degrees)
    last = len(chords) - 1
    for b, root in enumerate(chords):
        if b < intro:
            continue
        start = b * BAR
        tones = {(root + k) % 7 for k in (0, 2, 4)}
        raised = root % 7 == 4
        if b == last:
            final = min((d for d in degrees if d % 7 == 0), key=lambda d: abs(d - current), default=current)
            m.note(start, BAR - 30, 1, h.pitch(final, octave_tonic), vel(base))
            continue
        phrase_pos = (b - intro) % 4
        if phrase_pos < 2 and rng.random() < 0.6:
            pattern = motif[phrase_pos]
        else:
            pattern = rng.choice(rhythms)
        pos = 0
        for k, length in enumerate(pattern):
            if rng.random() < 0.07 and k > 0:
                pos += length
                continue
            strong = pos % 4 == 0
            if strong or k == len(pattern) - 1 and phrase_pos == 3:
                choices = [d for d in degrees if d % 7 in tones] or degrees
                current = min(choices, key=lambda d: (abs(d - current), rng.random()))
            else:
                step = rng.choice([-2, -1, -1, 1, 1, 2, 0])
                target = current + step
                if target < degrees[0] or target > degrees[-1]:
                    target = current - step
                current = max(degrees[0], min(degrees[-1], target))
            accent = 8 if strong else 0
            m.note(humanize(start + pos * eighth), length * eighth - 15, 1,
                   h.pitch(current, octave_tonic, raised=raised), vel(base + accent))
            pos += length


def bass_line(m, rng, h, t, chords, base, humanize, vel):
    low = rng.randint(28, 40) if t.eq is not None else rng.randint(28, 35)
    octave_tonic = h.tonic_near(low + 11)
    if octave_tonic - 12 >= low:
        octave_tonic -= 12

    def root_pitch(root):
        p = h.pitch(root % 7, octave_tonic)
        while p < low:
            p += 12
        while p > low + 14:
            p -= 12
        return p

    patterns = {
        "slow": [[(0, 2, 0), (2, 2, 7)], [(0, 3, 0), (3, 1, 12)], [(0, 1.5, 0), (1.5, 0.5, 0), (2, 2, 7)]],
        "medium": [[(0, 1, 0), (1, 1, 7), (2, 1, 12), (3, 1, 7)], [(0, 1.5, 0), (1.5, 0.5, 0), (2, 1, 7), (3, 1, 10)],
                   [(0, 1, 0), (1, 0.5, 0), (1.5, 0.5, 7), (2, 1, 12), (3, 1, 7)]],
        "fast": [[(k * 0.5, 0.5, 12 if k % 4 == 3 else 0) for k in range(8)],
                 [(0, 0.5, 0), (0.5, 0.5, 12), (1, 0.5, 0), (1.5, 0.5, 12), (2, 0.5, 0), (2.5, 0.5, 7), (3, 0.5, 0), (3.5, 0.5, 7)],
                 [(0, 0.75, 0), (0.75, 0.75, 0), (1.5, 0.5, 7), (2, 0.75, 0), (2.75, 0.75, 12), (3.5, 0.5, 7)]],
    }[t.tempo]
    pattern = rng.choice(patterns)
    last = len(chords) - 1
    for b, root in enumerate(chords):
        start = b * BAR
        r = root_pitch(root)
        if b == last:
            m.note(start, BAR - 30, 0, r, vel(base))
            continue
        # The fifth and the octave of the chord root (the fifth is diatonic: a diminished fifth on vii/ii°).
        fifth = h.pitch(root % 7 + 4, octave_tonic, raised=(root % 7 == 4)) - h.pitch(root % 7, octave_tonic)
        for k, (beat, length, interval) in enumerate(pattern):
            if interval == 7:
                p = r + fifth
            elif interval == 10:
                p = r + (h.pitch(root % 7 + 6, octave_tonic) - h.pitch(root % 7, octave_tonic))
            else:
                p = r + interval
            # The last note of the bar leads to the next chord's root now and then.
            if k == len(pattern) - 1 and b + 1 < len(chords) and rng.random() < 0.4:
                nxt = root_pitch(chords[b + 1])
                p = nxt + (1 if rng.random() < 0.5 else -1) if abs(nxt - r) > 2 else p
            m.note(humanize(start + int(beat * TICKS)), int(length * TICKS) - 20, 0, p, vel(base + (8 if beat == 0 else 0)))


def drum_part(m, rng, t, bars, intro, loud, humanize):
    kick, snare, side, hat, pedal_hat, open_hat, ride, crash = 36, 38, 37, 42, 44, 46, 51, 49
    toms = [50, 48, 47, 45]
    groove = {"slow": "half-time", "medium": rng.choice(["rock", "rock", "shuffle-ish"]),
              "fast": rng.choice(["four-on-the-floor", "rock", "driving"])}[t.tempo]
    cymbal = rng.choice([hat, hat, ride, pedal_hat])
    backbeat = snare if loud or rng.random() < 0.5 else side
    v = (lambda x: max(1, min(127, x + rng.randint(-5, 5)))) if loud else (lambda x: max(1, min(127, x * 45 // 100 + rng.randint(-3, 3))))
    fill_every = rng.choice([4, 8])
    start_bar = intro if rng.random() < 0.7 else 0
    last = bars - 1
    for b in range(start_bar, bars):
        s = b * BAR
        if b == last:
            m.note(s, TICKS, 9, kick, v(112))
            m.note(s, TICKS * 2, 9, crash, v(108))
            continue
        if b == start_bar or (b - start_bar) % fill_every == 0:
            m.note(s, TICKS, 9, crash, v(100))
        fill = (b - start_bar) % fill_every == fill_every - 1
        if groove == "half-time":
            hits = [(0, kick, 110), (2, backbeat, 105), (2.5, kick, 85)]
            cym = [k * 0.5 for k in range(8)]
        elif groove == "four-on-the-floor":
            hits = [(0, kick, 112), (1, kick, 108), (2, kick, 110), (3, kick, 108), (1, snare, 100), (3, snare, 100)]
            cym = [0.5, 1.5, 2.5, 3.5]
        elif groove == "driving":
            hits = [(0, kick, 112), (1, backbeat, 104), (1.5, kick, 96), (2, kick, 108), (3, backbeat, 106)]
            cym = [k * 0.5 for k in range(8)]
        elif groove == "shuffle-ish":
            hits = [(0, kick, 110), (1, backbeat, 100), (2, kick, 104), (2.67, kick, 80), (3, backbeat, 102)]
            cym = [0, 0.67, 1, 1.67, 2, 2.67, 3, 3.67]
        else:
            hits = [(0, kick, 110), (1, backbeat, 104), (2, kick, 106), (2.5, kick, 90), (3, backbeat, 104)]
            cym = [k * 0.5 for k in range(8)]
        for beat, note, velocity in hits:
            if fill and beat >= 3:
                continue
            m.note(humanize(s + int(beat * TICKS)), TICKS // 4, 9, note, v(velocity))
        for beat in cym:
            if fill and beat >= 3:
                continue
            c = open_hat if groove == "four-on-the-floor" and cymbal == hat else cymbal
            m.note(humanize(s + int(beat * TICKS)), TICKS // 4, 9, c, v(80 if beat != int(beat) else 92))
        if fill:
            for k in range(4):
                m.note(s + 3 * TICKS + k * TICKS // 4, TICKS // 4, 9, rng.choice([snare] + toms), v(96 + 4 * k))


# ---------------------------------------------------------------------------------------------
# Rendering and encoding


def run(cmd, what):
    p = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if p.returncode != 0:
        raise RuntimeError(f"{what} failed (exit {p.returncode}): {' '.join(cmd)}\n{p.stderr.decode(errors='replace')[-2000:]}")
    return p


FFMPEG = ["ffmpeg", "-nostdin", "-hide_banner", "-y"]


class FluidSynth:
    """libfluidsynth (the library the `fluidsynth` CLI is built on) in this process, through ctypes.

    Each track gets a synthesizer of its own, with its own settings, rendered in FluidSynth's 64-frame
    blocks until its MIDI player stops: what `fluidsynth -ni -g GAIN -r 44100 -O float -o … -F out.wav
    SOUNDFONT track.mid` does, and the same samples (the WAV header differs: no PEAK chunk). What the
    CLI cannot do is keep a soundfont loaded between tracks: MuseScore's `.sf3` holds Ogg-compressed
    samples, and loading it cost about 2 s of CPU per track, mostly Vorbis set-up. A keeper synthesizer
    per soundfont stays loaded for the life of the process, and FluidSynth's sample cache (shared by
    every synthesizer in a process) then makes each track's own load cost about 0.1 s."""

    BLOCK = 64                                   # FluidSynth's block, and the CLI's file renderer period
    FAILED = -1
    PLAYING = 1
    TYPES = {0: "num", 1: "int", 2: "str"}       # fluid_settings_get_type

    def __init__(self):
        name = ctypes.util.find_library("fluidsynth") or "libfluidsynth.so.3"
        try:
            lib = ctypes.CDLL(name)
        except OSError as e:
            raise RuntimeError(f"cannot load libfluidsynth ({name}: {e}); install the Debian package fluidsynth "
                               "(scripts/setup.sh does)") from e
        vp, cp, i, d = ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int, ctypes.c_double
        for fn, res, args in [("new_fluid_settings", vp, []), ("delete_fluid_settings", None, [vp]),
                              ("fluid_settings_get_type", i, [vp, cp]), ("fluid_settings_setint", i, [vp, cp, i]),
                              ("fluid_settings_setnum", i, [vp, cp, d]), ("fluid_settings_setstr", i, [vp, cp, cp]),
                              ("new_fluid_synth", vp, [vp]), ("delete_fluid_synth", None, [vp]),
                              ("fluid_synth_sfload", i, [vp, cp, i]),
                              ("fluid_synth_write_float", i, [vp, i, vp, i, i, vp, i, i]),
                              ("new_fluid_player", vp, [vp]), ("delete_fluid_player", None, [vp]),
                              ("fluid_player_add", i, [vp, cp]), ("fluid_player_play", i, [vp]),
                              ("fluid_player_get_status", i, [vp])]:
            f = getattr(lib, fn)
            f.restype, f.argtypes = res, args
        self.lib = lib
        self.keepers = {}
        self.lock = threading.Lock()

    def _synth(self, soundfont, settings):
        """A new synthesizer with these settings (name -> value, set by the setting's type as the
        CLI's -o does) and the soundfont loaded; returns (settings, synth) for `_free`."""
        lib = self.lib
        s = lib.new_fluid_settings()
        if not s:
            raise RuntimeError("FluidSynth: new_fluid_settings failed")
        try:
            for name, value in settings.items():
                kind = self.TYPES.get(lib.fluid_settings_get_type(s, name.encode()))
                if kind == "int":
                    ok = lib.fluid_settings_setint(s, name.encode(), int(value))
                elif kind == "num":
                    ok = lib.fluid_settings_setnum(s, name.encode(), float(value))
                elif kind == "str":
                    ok = lib.fluid_settings_setstr(s, name.encode(), str(value).encode())
                else:
                    ok = self.FAILED
                if ok == self.FAILED:
                    raise RuntimeError(f"FluidSynth refused the setting {name}={value}")
            synth = lib.new_fluid_synth(s)
            if not synth:
                raise RuntimeError("FluidSynth: new_fluid_synth failed")
        except BaseException:
            lib.delete_fluid_settings(s)
            raise
        if lib.fluid_synth_sfload(synth, soundfont.encode(), 1) == self.FAILED:
            self._free(s, synth)
            raise RuntimeError(f"FluidSynth could not load the soundfont {soundfont}; reinstall its Debian package")
        return s, synth

    def _free(self, settings, synth):
        self.lib.delete_fluid_synth(synth)
        self.lib.delete_fluid_settings(settings)

    def render(self, soundfont, settings, mid, wav):
        """Renders the MIDI file `mid` to a stereo 32-bit float WAV at synth.sample-rate."""
        base = {"player.timing-source": "sample", "synth.lock-memory": 0, "synth.dynamic-sample-loading": 1}
        with self.lock:
            if soundfont not in self.keepers:
                self.keepers[soundfont] = self._synth(soundfont, base)
        s, synth = self._synth(soundfont, {**base, **settings})
        lib = self.lib
        player = None
        try:
            player = lib.new_fluid_player(synth)
            if not player or lib.fluid_player_add(player, mid.encode()) == self.FAILED \
                    or lib.fluid_player_play(player) == self.FAILED:
                raise RuntimeError(f"FluidSynth could not play {mid}")
            # Interleaved stereo, written block by block into a buffer of 4096 blocks (6 s at 44.1 kHz)
            # that goes to the file whenever it is full.
            blocks = 4096
            buffer = (ctypes.c_float * (2 * self.BLOCK * blocks))()
            view = memoryview(buffer).cast("B")
            rate = int(settings["synth.sample-rate"])
            write, status = lib.fluid_synth_write_float, lib.fluid_player_get_status
            with open(wav, "wb") as f:
                f.write(bytes(44))                              # the header, once the length is known
                frames, used = 0, 0
                while status(player) == self.PLAYING:
                    at = 2 * self.BLOCK * used
                    if write(synth, self.BLOCK, buffer, at, 2, buffer, at + 1, 2) == self.FAILED:
                        raise RuntimeError(f"FluidSynth failed rendering {mid}")
                    used += 1
                    if used == blocks:
                        f.write(view)
                        frames, used = frames + used * self.BLOCK, 0
                f.write(view[:used * self.BLOCK * 8])
                frames += used * self.BLOCK
                size = frames * 8
                f.seek(0)
                f.write(b"RIFF" + struct.pack("<I", 36 + size) + b"WAVEfmt "
                        + struct.pack("<IHHIIHH", 16, 3, 2, rate, rate * 8, 8, 32) + b"data" + struct.pack("<I", size))
        finally:
            if player:
                lib.delete_fluid_player(player)
            self._free(s, synth)


FLUID = None                                     # the FluidSynth that main() loads before rendering


def synthesize(t, mid, wav):
    """The track's MIDI through FluidSynth with its soundfont, gain and effect settings."""
    settings = {"synth.sample-rate": RENDER_RATE, "synth.gain": FLUIDSYNTH_GAIN[t.loudness]}
    settings.update({f"synth.reverb.{k}": v for k, v in t.reverb.items()})
    settings.update({f"synth.chorus.{k}": v for k, v in t.chorus.items()})
    FLUID.render(SOUNDFONTS[t.soundfont][0], settings, mid, wav)


def render(t, out_dir, scratch):
    """MIDI → FluidSynth (float WAV) → level correction, pad/trim → the track's codec. Returns
    (track_id, rms_db, peak_db) of the encoded level."""
    mid = os.path.join(out_dir, "midi", t.track_id + ".mid")
    wav = os.path.join(scratch, t.track_id + ".wav")
    synthesize(t, mid, wav)
    samples = round(t.duration * RENDER_RATE)
    # The EQ runs at the render rate: aresample pins it there (FFmpeg would otherwise negotiate the
    # output rate back through the EQ filters, and apad/atrim would count samples at that rate).
    shape = (f"aresample={RENDER_RATE},{t.eq}," if t.eq is not None else "") \
        + f"apad=whole_len={samples},atrim=end_sample={samples},afade=t=out:st={t.duration - 0.6:.3f}:d=0.6"
    # One pass shapes, downmixes to the track's channels and measures, and keeps that signal (32-bit
    # float, as the filters give it: lossless); the encode pass then only applies the gain. The level
    # is measured on what is encoded: a mono track's downmix can be several dB below its stereo render
    # (reverb, chorus and panning cancel), which version 2 measured instead.
    layout = "mono" if t.channels == 1 else "stereo"
    shaped = os.path.join(scratch, t.track_id + ".shaped.wav")
    measure = f",aformat=channel_layouts={layout},astats=measure_perchannel=none:measure_overall=Peak_level+RMS_level"
    stats = run(FFMPEG + ["-loglevel", "info", "-i", wav, "-af", shape + measure, "-c:a", "pcm_f32le",
                          "-fflags", "+bitexact", "-flags:a", "+bitexact", shaped],
                "ffmpeg astats").stderr.decode(errors="replace")
    os.remove(wav)
    rms = float(re.search(r"RMS level dB: (-?[0-9.]+|-inf)", stats).group(1))
    peak = float(re.search(r"Peak level dB: (-?[0-9.]+|-inf)", stats).group(1))
    gain = TARGET_RMS_DB[t.loudness] + t.level_jitter - rms
    gain = min(gain, PEAK_CEILING_DB - peak)
    out = os.path.join(out_dir, t.path)
    run(FFMPEG + ["-loglevel", "error", "-i", shaped, "-af", f"volume={gain:.2f}dB",
                  "-ar", str(t.sample_rate), "-ac", str(t.channels)] + t.codec_args + t.metadata
        + ["-fflags", "+bitexact", "-flags:a", "+bitexact", "-map_metadata", "-1", out], "ffmpeg encode")
    os.remove(shaped)
    return t.track_id, round(rms + gain, 1), round(peak + gain, 1)


# ---------------------------------------------------------------------------------------------
# Weak text

FAMILY_TAGS = {
    "piano": ["piano", "Piano", "keys", "acoustic piano", "Piano Solo", "pianno", "PIANO", "solo piano", "grand piano", "piano!!", "Klavier"],
    "guitar": ["guitar", "Guitar", "acoustic guitar", "guitr", "fingerstyle", "Acoustic Guitar", "guitar instrumental", "gtr", "guitars"],
    "strings": ["strings", "Strings", "string ensemble", "orchestral strings", "strngs", "String Section", "violins", "orchestra", "string quartet"],
    "brass": ["brass", "Brass", "brass section", "horns", "trumpets", "bras", "Brass Ensemble", "brass band", "BRASS!!!"],
    "flute": ["flute", "Flute", "flutes", "woodwind", "flute solo", "flutte", "FLUTE", "wind instrument", "flauta"],
    "organ": ["organ", "Organ", "church organ", "hammond", "orgn", "pipe organ", "Organ music", "B3 organ", "organ solo"],
    "bass": ["bass", "Bass", "bass guitar", "bassline", "Bass Guitar", "electric bass", "basslines", "bas", "bass solo"],
    "synth": ["synth", "Synth", "synthesizer", "synths", "Synth Lead", "synt", "analog synth", "SYNTH", "synthesiser"],
}
TEMPO_TAGS = {"slow": ["slow", "chill", "downtempo", "Slow", "relaxing", "calm", "slow tempo"],
              "medium": ["mid-tempo", "moderate", "groovy", "easy listening"],
              "fast": ["fast", "upbeat", "uptempo", "Fast", "up-tempo", "high tempo", "driving"]}
MODE_TAGS = {"major": ["major", "happy", "major key", "uplifting", "Happy", "cheerful", "feel good"],
             "minor": ["minor", "sad", "melancholic", "minor key", "Sad", "melancholy", "dark", "sad :("]}
DRUM_TAGS = {True: ["drums", "percussion", "beat", "beats", "Drums", "drum kit", "groove"],
             False: ["no drums", "acoustic", "drumless", "No Drums", "no percussion", "ambient"]}
LOUD_TAGS = {"loud": ["loud", "energetic", "powerful", "LOUD", "Loud", "intense"],
             "quiet": ["quiet", "soft", "gentle", "Quiet", "mellow", "soft and quiet"]}
JUNK_TAGS = ["favorites", "favourite", "2019", "2021", "seen live", "check out my channel", "awesome", "Awesome!!!",
             "http://bit.ly/3xF9kQ", "https://soundcloud.com/demo-uploads", "my playlist", "love it", "<3",
             "instrumental", "10/10", "beautiful", "music", "good", "*****", "to listen", "spotify", "wow",
             "under 2000 listeners", "albums I own", "background music", "lol"]
GENRE_TAGS = {"piano": ["classical", "neoclassical", "ambient"], "guitar": ["folk", "acoustic", "singer-songwriter"],
              "strings": ["classical", "soundtrack", "cinematic"], "brass": ["soundtrack", "jazz", "march"],
              "flute": ["new age", "world", "classical"], "organ": ["gospel", "classical", "church music"],
              "bass": ["funk", "jazz", "groove"], "synth": ["electronic", "synthwave", "chiptune"]}

FAMILY_WORDS = {"piano": ["piano", "solo piano", "grand piano"], "guitar": ["guitar", "acoustic guitar"],
                "strings": ["string ensemble", "strings", "string section"], "brass": ["brass section", "brass", "horns"],
                "flute": ["flute", "solo flute"], "organ": ["organ"], "bass": ["bass guitar", "electric bass", "bass"],
                "synth": ["synth lead", "synthesizer", "synth"]}
PROGRAM_WORDS = {24: "nylon-string guitar", 25: "steel-string guitar", 19: "church organ", 16: "drawbar organ",
                 81: "sawtooth synth", 80: "square-wave synth", 33: "fingered bass", 34: "picked bass"}
TEMPO_WORDS = {"slow": ["slow", "unhurried", "laid-back", "slow, gentle"], "medium": ["mid-tempo", "easygoing", "moderately paced"],
               "fast": ["fast", "driving", "upbeat", "brisk"]}
MODE_WORDS = {"major": ["bright", "happy", "cheerful", "uplifting"], "minor": ["sad", "melancholic", "dark", "wistful"]}
LOUD_WORDS = {"loud": ["loud", "powerful", "energetic", "full-on"], "quiet": ["quiet", "soft", "delicate", "hushed"]}
DRUM_PHRASES = {True: ["with a steady drum beat", "over a simple drum groove", "backed by a drum kit", "with drums driving it"],
                False: ["without any percussion", "with no drums at all", "on its own, no drums", "with no rhythm section"]}
ACTIVITIES = {"slow": ["sleeping", "studying", "a rainy evening", "winding down"], "medium": ["cooking", "working", "a walk in the park"],
              "fast": ["running", "the gym", "a road trip", "cleaning the house"]}
DESCRIPTIVE = [
    "A {tempo} {mode} {fam} piece in {key}.",
    "{Fam} plays a {mode} melody {drums}.",
    "This is a {loud}, {tempo} track built on {fam}.",
    "The {fam} moves through a {prog} progression at about {bpm} BPM.",
    "Key: {key}. Tempo: {bpm} bpm.",
    "I recorded this on my {fam} late at night and kept it {loud}.",
    "Great for {activity}: {tempo} and {mode}.",
    "The mood is {mode} and {loud}, {drums}.",
    "{Tempo} {fam}, {mode} harmonies and {loudness_noun}.",
    "A short {fam} sketch, {drums}, in {key}.",
    "Everything here is played on {fam}; the melody stays {mode} from start to end.",
]
FOREIGN = {
    "fr": ("Un morceau {t} pour {f}, en mode {m}.", {"slow": "lent", "medium": "modéré", "fast": "rapide"},
           {"piano": "piano", "guitar": "guitare", "strings": "cordes", "brass": "cuivres", "flute": "flûte",
            "organ": "orgue", "bass": "basse", "synth": "synthétiseur"}, {"major": "majeur", "minor": "mineur"}),
    "de": ("Ein {t} Stück für {f} in {m}.", {"slow": "langsames", "medium": "gemächliches", "fast": "schnelles"},
           {"piano": "Klavier", "guitar": "Gitarre", "strings": "Streicher", "brass": "Blechbläser", "flute": "Flöte",
            "organ": "Orgel", "bass": "Bass", "synth": "Synthesizer"}, {"major": "Dur", "minor": "Moll"}),
    "es": ("Una pieza {t} de {f} en modo {m}.", {"slow": "lenta", "medium": "tranquila", "fast": "rápida"},
           {"piano": "piano", "guitar": "guitarra", "strings": "cuerdas", "brass": "metales", "flute": "flauta",
            "organ": "órgano", "bass": "bajo", "synth": "sintetizador"}, {"major": "mayor", "minor": "menor"}),
    "ja": ("{t}{f}の曲です。{m}", {"slow": "ゆっくりした", "medium": "ほどよいテンポの", "fast": "速い"},
           {"piano": "ピアノ", "guitar": "ギター", "strings": "ストリングス", "brass": "ブラス", "flute": "フルート",
            "organ": "オルガン", "bass": "ベース", "synth": "シンセ"}, {"major": "明るい長調。", "minor": "切ない短調。"}),
}
FOREIGN_JUNK = ["Merci d'avoir écouté !", "Danke fürs Zuhören!", "¡Gracias por escuchar!", "チャンネル登録お願いします！",
                "N'oubliez pas de vous abonner.", "Abonniert den Kanal für mehr Musik.", "¡Suscríbete y comparte!"]
HANDLES = ["lofi.nights", "demo_ensemble", "keysandstrings", "bedroom.tapes", "mulan_uploads", "midnight_mixes"]
DOMAINS = ["example.com", "music.example.org", "bandcamp.example.net", "soundcloud.com", "youtube.com"]
LABELS = ["Demo Ensemble Records", "Bedroom Tapes", "Night Owl Music", "Mulan Demo Label", "Paper Lantern Audio"]
TITLE_WORDS = ["Morning", "Harbor", "Glass", "Lantern", "River", "Winter", "Echo", "Paper", "Drift", "Satellite",
               "Velvet", "Static", "Meadow", "Orbit", "Cinder", "Hollow", "Summer", "Signal", "Amber", "Blue Room"]
ARTISTS = ["Demo Ensemble", "The Midi Collective", "Paper Lanterns", "Night Owl", "A. Synth", "Quartet 7"]


def pick(rng, items):
    return items[rng.randrange(len(items))]


def noisy(rng, value, values, p=0.05):
    """The true value, or with probability p another one (label noise)."""
    if rng.random() < p:
        return pick(rng, [v for v in values if v != value])
    return value


def make_title(rng):
    if rng.random() < 0.15:
        return f"Untitled {rng.randint(1, 40)}"
    return f"{pick(rng, TITLE_WORDS)} {pick(rng, TITLE_WORDS)}".strip()


def track_tags(rng, t):
    if rng.random() < 0.07:
        return []
    tags = []
    if rng.random() < 0.85:
        family = noisy(rng, t.family, FAMILIES)
        tags.append(pick(rng, FAMILY_TAGS[family]))
        if rng.random() < 0.25:  # the same thing twice, spelled differently
            tags.append(pick(rng, FAMILY_TAGS[family]))
    if rng.random() < (0.6 if t.tempo != "medium" else 0.3):
        tags.append(pick(rng, TEMPO_TAGS[noisy(rng, t.tempo, list(TEMPI))]))
    if rng.random() < 0.5:
        tags.append(pick(rng, MODE_TAGS[noisy(rng, t.mode, ["major", "minor"])]))
    if rng.random() < 0.5:
        tags.append(pick(rng, DRUM_TAGS[noisy(rng, t.drums, [True, False])]))
    if rng.random() < 0.45:
        tags.append(pick(rng, LOUD_TAGS[noisy(rng, t.loudness, ["loud", "quiet"])]))
    if rng.random() < 0.35:
        tags.append(pick(rng, GENRE_TAGS[t.family]))
    for _ in range(rng.choice([0, 0, 1, 1, 2, 3])):
        tags.append(pick(rng, JUNK_TAGS))
    rng.shuffle(tags)
    return tags


def descriptive_sentence(rng, t, template):
    family = noisy(rng, t.family, FAMILIES)
    fam = PROGRAM_WORDS.get(t.program) if family == t.family and rng.random() < 0.3 else None
    fam = fam or pick(rng, FAMILY_WORDS[family])
    tempo = pick(rng, TEMPO_WORDS[t.tempo])
    prog = t.progression
    text = template.format(
        tempo=tempo, Tempo=tempo[0].upper() + tempo[1:], mode=pick(rng, MODE_WORDS[noisy(rng, t.mode, ["major", "minor"])]),
        fam=fam, Fam=fam[0].upper() + fam[1:], key=t.key_name, drums=pick(rng, DRUM_PHRASES[t.drums]),
        loud=pick(rng, LOUD_WORDS[t.loudness]), prog=prog, bpm=5 * round(t.bpm / 5),
        activity=pick(rng, ACTIVITIES[t.tempo]),
        loudness_noun="a loud mix" if t.loudness == "loud" else "a quiet, intimate sound")
    return re.sub(r"\b([Aa]) (?=[aeiouAEIOU])", r"\1n ", text)


def junk_lines(rng, t):
    year = rng.randint(2014, 2023)
    kinds = [
        lambda: pick(rng, ["Subscribe for more music every week!", "Like and share if you enjoyed this 🙏",
                           "Don't forget to hit the bell 🔔 and subscribe!", "Thanks for 10k subscribers!!!",
                           "Like, comment and subscribe :)"]),
        lambda: f"Follow me on Instagram: @{pick(rng, HANDLES)}",
        lambda: f"Stream it everywhere: https://{pick(rng, DOMAINS)}/{t.track_id}",
        lambda: f"Free download: http://bit.ly/{''.join(pick(rng, 'abcdefghjkmnpqrstuvwxyz23456789') for _ in range(6))}",
        lambda: f"Business inquiries: booking@{pick(rng, DOMAINS)}",
        lambda: f"© {year} {pick(rng, LABELS)}. All rights reserved.",
        lambda: f"℗ {year} {pick(rng, LABELS)}",
        lambda: "Tracklist:\n" + "\n".join(
            f"{m:02d}:{s:02d} {make_title(rng)}" for m, s in sorted((rng.randint(0, 9), rng.randint(0, 59)) for _ in range(rng.randint(3, 5)))),
        lambda: " ".join("#" + w for w in rng.sample(["music", "relax", "study", "instrumental", "newmusic", "chill", "vibes", "beats"], 3)),
        lambda: pick(rng, FOREIGN_JUNK),
        lambda: "No copyright infringement intended.",
    ]
    return [pick(rng, kinds)() for _ in range(rng.randint(1, 4))]


def track_description(rng, t):
    r = rng.random()
    if r < 0.15:
        return None
    descriptive = []
    if r >= 0.25:  # 10% carry only junk
        for template in rng.sample(DESCRIPTIVE, rng.randint(1, 3)):
            descriptive.append(descriptive_sentence(rng, t, template))
        if rng.random() < 0.3:
            template, tempo, fam, mode = FOREIGN[pick(rng, sorted(FOREIGN))]
            descriptive.insert(rng.randrange(len(descriptive) + 1),
                               template.format(t=tempo[t.tempo], f=fam[t.family], m=mode[t.mode]))
    paragraphs = []
    if descriptive:
        paragraphs.append(" ".join(descriptive))
    if not descriptive or rng.random() < 0.75:
        junk = junk_lines(rng, t)
        if rng.random() < 0.5:
            paragraphs.append("\n".join(junk))
        else:
            paragraphs.insert(0, "\n".join(junk))
    return "\n\n".join(paragraphs)


def track_aset(rng, t):
    if rng.random() < 0.3:
        return None
    ids = [ASET_MUSIC] if rng.random() < 0.8 else []
    family = noisy(rng, t.family, FAMILIES, p=0.03)
    ids += ASET_FAMILY[family][:1] if rng.random() < 0.6 else ASET_FAMILY[family]
    if family == t.family and t.program in ASET_EXTRA and rng.random() < 0.5:
        ids.append(ASET_EXTRA[t.program])
    if t.drums and rng.random() < 0.85:
        ids.append(ASET_DRUM_KIT)
    return ids


TOPICAL_PLAYLISTS = [
    ("slow piano for sleep", "songs to fall asleep to", lambda t: t.family == "piano" and t.tempo == "slow"),
    ("sad minor-key strings", None, lambda t: t.family == "strings" and t.mode == "minor"),
    ("workout beats", "for the gym 💪", lambda t: t.tempo == "fast" and t.drums),
    ("brass fanfares", None, lambda t: t.family == "brass" and t.mode == "major"),
    ("Late Night Synths", "neon, night drives", lambda t: t.family == "synth"),
    ("acoustic guitar chill", None, lambda t: t.family == "guitar" and t.tempo != "fast"),
    ("organ hymns", None, lambda t: t.family == "organ" and not t.drums),
    ("bass grooves", "slap it", lambda t: t.family == "bass" and t.drums),
    ("flute meditation 🧘", None, lambda t: t.family == "flute" and t.loudness == "quiet"),
    ("happy vibes only", None, lambda t: t.mode == "major"),
    ("melancholy evenings", "for rainy days", lambda t: t.mode == "minor" and t.tempo != "fast"),
    ("LOUD", None, lambda t: t.loudness == "loud"),
    ("quiet focus", "no distractions, no drums", lambda t: t.loudness == "quiet" and not t.drums),
    ("upbeat morning run", None, lambda t: t.tempo == "fast" and t.mode == "major"),
    ("no drums, just vibes", None, lambda t: not t.drums),
    ("Piano Ballads", None, lambda t: t.family == "piano"),
    ("strings & orchestra", None, lambda t: t.family == "strings"),
    ("chill beats to study to", "lofi-ish", lambda t: t.drums and t.tempo == "slow"),
    ("synthwave drive", None, lambda t: t.family == "synth" and t.drums),
    ("guitar", None, lambda t: t.family == "guitar"),
    ("flute & woodwinds", None, lambda t: t.family == "flute"),
    ("brass", None, lambda t: t.family == "brass"),
    ("Organ", None, lambda t: t.family == "organ"),
    ("bass lines", None, lambda t: t.family == "bass"),
    ("minor key", None, lambda t: t.mode == "minor"),
    ("slow & soft", None, lambda t: t.tempo == "slow" and t.loudness == "quiet"),
]
GENERIC_PLAYLISTS = ["my mix 3", "favorites", "2021", "🔥🔥", "Liked Songs", "new playlist (2)", "car", "stuff",
                     "★★★", "mix #7", "summer 2019", "misc", "Playlist 12", "!!!", "on repeat"]


def playlists(rng, tracks, n_known_ids):
    out = []
    for title, description, wanted in TOPICAL_PLAYLISTS:
        matching = [t.track_id for t in tracks if wanted(t)]
        if len(matching) < 2:
            continue
        members = rng.sample(matching, max(2, min(50, round(len(matching) * rng.uniform(0.5, 1.0)))))
        others = [t.track_id for t in tracks if not wanted(t)]
        intruders = min(len(others), sum(rng.random() < 0.1 for _ in members))
        members += rng.sample(others, intruders)
        out.append([title if rng.random() < 0.7 else title.title(), description if rng.random() < 0.7 else None, members])
    for title in rng.sample(GENERIC_PLAYLISTS, min(len(GENERIC_PLAYLISTS), 3 + len(tracks) // 25)):
        size = rng.randint(3, max(3, min(25, len(tracks) // 2)))
        members = rng.sample([t.track_id for t in tracks], min(size, len(tracks)))
        out.append([title, pick(rng, [None, None, "auto-generated", "stuff I like"]), members])
    # Two playlists still list tracks that were deleted from the collection.
    for k in range(min(2, len(out))):
        out[k][2].append(f"trk-{n_known_ids + 1 + k:04d}")
    rng.shuffle(out)
    records = []
    for k, (title, description, members) in enumerate(out):
        rng.shuffle(members)
        pid = 1000 + k if rng.random() < 0.15 else f"pl-{k + 1:03d}"
        record = {"playlist_id": pid, "title": title}
        if description:
            record["description"] = description
        record["track_ids"] = members
        records.append(record)
    return records


def write_text(out_dir, seed, tracks, broken):
    rng = random.Random(f"demo-corpus/{seed}/text")
    music = tracks + [b for b in broken if b.broken in ("too-short", "truncated")]
    music.sort(key=lambda t: t.track_id)
    tags, descriptions, aset = [], [], []
    for t in music:
        ts = track_tags(rng, t)
        if ts:
            tags.append({"track_id": t.track_id, "tags": ts} if rng.random() < 0.8
                        else {"track_id": t.track_id, "source": "tags", "text": ts})
        d = track_description(rng, t)
        if d:
            descriptions.append({"track_id": t.track_id, "source": "descriptions", "text": d} if rng.random() < 0.5
                                else {"track_id": t.track_id, "description": d})
        a = track_aset(rng, t)
        if a:
            aset.append({"track_id": t.track_id, "aset": a})
    for b in broken:  # files nobody could play still collect junk tags
        if b.broken in ("silent", "missing-file"):
            tags.append({"track_id": b.track_id, "tags": rng.sample(JUNK_TAGS, 2)})
    # A second tagger for some tracks, further down the file.
    for t in rng.sample(music, len(music) // 10):
        extra = track_tags(rng, t)[:3]
        if extra:
            tags.append({"track_id": t.track_id, "tags": extra})
    text_dir = os.path.join(out_dir, "text")
    os.makedirs(text_dir)
    write_jsonl(os.path.join(text_dir, "tags.jsonl"), tags)
    write_jsonl(os.path.join(text_dir, "descriptions.jsonl"), descriptions)
    write_jsonl(os.path.join(text_dir, "aset.jsonl"), aset)
    write_jsonl(os.path.join(text_dir, "playlists.jsonl"), playlists(rng, music, len(tracks) + len(broken)))


def write_jsonl(path, records):
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")


def write_csv(path, header, rows, delimiter=","):
    with open(path, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f, delimiter=delimiter, lineterminator="\n")
        w.writerow(header)
        w.writerows(rows)


# ---------------------------------------------------------------------------------------------
# The corpus


def caption(t):
    fam = {"strings": "string ensemble", "brass": "brass section", "bass": "bass guitar", "synth": "synthesizer"}.get(t.family, t.family)
    tempo = {"medium": "medium-tempo"}.get(t.tempo, t.tempo)
    drums = "with drums" if t.drums else "without drums"
    return f"a {t.loudness} {tempo} {fam} piece in a {t.mode} key {drums}"


def stamp(args):
    """What .complete holds: a corpus made by another version of this script, or with other
    arguments, is regenerated."""
    with open(os.path.abspath(__file__), "rb") as f:
        script = hashlib.sha256(f.read()).hexdigest()[:12]
    return (f"mulan demo corpus v{VERSION} seed={args.seed} tracks={args.tracks} soundfonts={','.join(args.soundfonts)} "
            f"eval={args.eval_split} production={args.production} script={script}\n")


class Progress:
    def __init__(self, total):
        self.total, self.done, self.started = total, 0, time.monotonic()
        self.tty = sys.stdout.isatty()
        self.next_report = 0.1

    def advance(self):
        self.done += 1
        share = self.done / self.total
        elapsed = time.monotonic() - self.started
        if self.tty:
            print(f"\rdemo corpus: rendered {self.done}/{self.total} ({share:.0%}) in {elapsed:.0f} s", end="", flush=True)
            if self.done == self.total:
                print()
        elif share + 1e-9 >= self.next_report or self.done == self.total:
            print(f"demo corpus: rendered {self.done}/{self.total} ({share:.0%}) in {elapsed:.0f} s", flush=True)
            while self.next_report <= share + 1e-9:
                self.next_report += 0.1


def build(out, args):
    started = time.monotonic()
    tmp = out + ".tmp"
    if os.path.exists(tmp):
        shutil.rmtree(tmp)
    for d in ("audio", "midi", "eval", ".render"):
        os.makedirs(os.path.join(tmp, d))
    tracks, broken = draw_plan(args.tracks, args.seed)
    draw_sound(tracks, broken, args.seed, args.soundfonts, args.production)
    meta_rng = random.Random(f"demo-corpus/{args.seed}/metadata")
    for t in tracks + broken:
        # Container tags on some files: a title and an artist, never the attributes.
        t.metadata = []
        if meta_rng.random() < 0.6:
            t.metadata = ["-metadata", f"title={make_title(meta_rng)}", "-metadata", f"artist={pick(meta_rng, ARTISTS)}"]
    to_render = tracks + [b for b in broken if b.broken in ("too-short", "truncated")]
    for t in to_render:
        with open(os.path.join(tmp, "midi", t.track_id + ".mid"), "wb") as f:
            f.write(compose(t))

    levels = {}
    progress = Progress(len(to_render))
    scratch = os.path.join(tmp, ".render")
    with concurrent.futures.ThreadPoolExecutor(max_workers=args.jobs) as pool:
        futures = [pool.submit(render, t, tmp, scratch) for t in to_render]
        try:
            for future in concurrent.futures.as_completed(futures):
                track_id, rms, peak = future.result()
                levels[track_id] = (rms, peak)
                progress.advance()
        except BaseException:
            for f in futures:
                f.cancel()
            raise
    os.rmdir(scratch)

    # The broken inputs.
    for b in broken:
        path = os.path.join(tmp, b.path)
        if b.broken == "truncated":
            with open(path, "rb") as f:
                data = f.read()
            with open(path, "wb") as f:
                f.write(data[: len(data) * 2 // 5])
        elif b.broken == "silent":
            run(FFMPEG + ["-loglevel", "error", "-f", "lavfi", "-i", "anullsrc=r=44100:cl=stereo", "-t", "35",
                          "-c:a", "flac", "-fflags", "+bitexact", "-flags:a", "+bitexact", path], "ffmpeg silence")
        elif b.broken == "missing-file":
            pass  # listed in the manifest, never written

    everything = sorted(tracks + broken, key=lambda t: t.track_id)
    write_csv(os.path.join(tmp, "manifest.csv"), ["track_id", "path", "start_s", "end_s", "split"],
              [[t.track_id, t.path, "", "", t.split] for t in everything])
    write_text(tmp, args.seed, tracks, broken)

    # Ground truth, apart from everything the pipeline reads.
    by_id = sorted(tracks, key=lambda t: t.track_id)
    write_csv(os.path.join(tmp, "ground-truth.csv"),
              ["track_id", "path", "split", "family", "program", "tempo_bpm", "tempo", "mode", "key", "drums",
               "loudness", "duration_s", "codec", "sample_rate", "channels", "rms_dbfs", "peak_dbfs", "style",
               "progression", "soundfont", "velocity_curve", "reverb_send", "chorus_send", "eq"],
              [[t.track_id, t.path, t.split, t.family, t.program, t.bpm, t.tempo, t.mode, t.key_name,
                "yes" if t.drums else "no", t.loudness, f"{t.duration:.1f}", t.codec, t.sample_rate, t.channels,
                levels[t.track_id][0], levels[t.track_id][1], t.style,
                t.progression, t.soundfont, t.velocity_curve, t.reverb_send, t.chorus_send, t.eq] for t in by_id])
    write_csv(os.path.join(tmp, "broken.csv"), ["track_id", "path", "expected_reason"],
              [[b.track_id, b.path, b.broken] for b in sorted(broken, key=lambda t: t.track_id)])
    # The evaluation files cover the test split, or with --eval-split all every good track (a held-out
    # corpus that is only evaluated on).
    test = [t for t in by_id if args.eval_split == "all" or t.split == "test"]

    def truth(t, tag):
        return {"slow": t.tempo == "slow", "fast": t.tempo == "fast", "major": t.mode == "major",
                "minor": t.mode == "minor", "drums": t.drums, "loud": t.loudness == "loud",
                "quiet": t.loudness == "quiet"}.get(tag, t.family == tag)

    write_csv(os.path.join(tmp, "eval", "test-tags.csv"), ["clip_id"] + EVAL_TAGS + ["mp3_path"],
              [[t.track_id] + [int(truth(t, tag)) for tag in EVAL_TAGS] + [t.path] for t in test], delimiter="\t")
    write_jsonl(os.path.join(tmp, "eval", "test-captions.jsonl"), [{"path": t.path, "caption": caption(t)} for t in test])
    with open(os.path.join(tmp, ".complete"), "w") as f:
        f.write(stamp(args))

    if os.path.exists(out):
        shutil.rmtree(out)
    os.rename(tmp, out)
    splits = {s: sum(t.split == s for t in tracks) for s in ("train", "valid", "test")}
    codecs = {c: sum(t.codec == c for t in tracks) for c in CODECS}
    fonts = {f: sum(t.soundfont == f for t in tracks) for f in args.soundfonts}
    hours = sum(t.duration for t in tracks) / 3600
    print(f"demo corpus: {len(tracks)} tracks ({hours:.2f} h; train {splits['train']}, valid {splits['valid']}, "
          f"test {splits['test']}; " + ", ".join(f"{c} {n}" for c, n in codecs.items())
          + "; " + ", ".join(f"{f} {n}" for f, n in fonts.items())
          + f") + {len(broken)} broken inputs in {out}, {time.monotonic() - started:.0f} s with {args.jobs} jobs", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="the corpus folder to write")
    parser.add_argument("--tracks", type=int, default=200, help="number of (good) tracks (default 200)")
    parser.add_argument("--seed", type=int, default=7, help="random seed (default 7)")
    parser.add_argument("--soundfonts", default=",".join(DEFAULT_SOUNDFONTS),
                        help="comma-separated General MIDI soundfonts to render with, one chosen per track from the seed: "
                        + ", ".join(SOUNDFONTS) + f" (default {','.join(DEFAULT_SOUNDFONTS)}; csound is the held-out one)")
    parser.add_argument("--production", choices=["varied", "plain"], default="varied",
                        help="varied (default): each track its own velocity curve, reverb, chorus, EQ and wider "
                        "registers; plain: none of these (version 1's sound, for tests that need an easy corpus)")
    parser.add_argument("--eval-split", choices=["test", "all"], default="test",
                        help="tracks in eval/test-tags.csv and eval/test-captions.jsonl: the test split (default) or all "
                        "good tracks (a held-out evaluation corpus)")
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:
        cpus = os.cpu_count() or 1
    parser.add_argument("--jobs", type=int, default=cpus, help=f"parallel renders (default: the CPU count, {cpus})")
    args = parser.parse_args()
    if args.tracks < 8:
        parser.error("--tracks must be at least 8 (one per instrument family)")
    if args.jobs < 1:
        parser.error("--jobs must be at least 1")
    args.soundfonts = [f.strip() for f in args.soundfonts.split(",") if f.strip()]
    unknown = [f for f in args.soundfonts if f not in SOUNDFONTS]
    if not args.soundfonts or unknown or len(set(args.soundfonts)) != len(args.soundfonts):
        parser.error(f"--soundfonts takes distinct names among {', '.join(SOUNDFONTS)}")
    out = os.path.abspath(args.out.rstrip("/") or "/")
    complete = os.path.join(out, ".complete")
    if os.path.isfile(complete):
        with open(complete) as f:
            if f.read() == stamp(args):
                print(f"demo corpus: {out} is up to date ({stamp(args).strip()})")
                return 0
    if os.path.isdir(out) and os.listdir(out) and not os.path.isfile(complete):
        print(f"make-demo-corpus: {out} exists and is not a demo corpus (no .complete); remove it or choose another --out",
              file=sys.stderr)
        return 1
    if shutil.which("ffmpeg") is None:
        print("make-demo-corpus: ffmpeg is not on PATH; run scripts/setup.sh (Debian package ffmpeg)", file=sys.stderr)
        return 1
    global FLUID
    try:
        FLUID = FluidSynth()
    except RuntimeError as e:
        print(f"make-demo-corpus: {e}", file=sys.stderr)
        return 1
    for name in args.soundfonts:
        path, package = SOUNDFONTS[name]
        if not os.path.isfile(path):
            print(f"make-demo-corpus: soundfont {name} ({path}) is missing; install the Debian package {package} "
                  "(scripts/setup.sh does)", file=sys.stderr)
            return 1
    try:
        build(out, args)
    except (RuntimeError, OSError) as e:
        print(f"make-demo-corpus: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
