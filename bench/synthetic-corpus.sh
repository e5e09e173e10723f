#!/usr/bin/env bash
# Generates the small, deterministic synthetic corpus of the training benchmark (not the demo: see scripts/make-demo-corpus.py) with the ffmpeg CLI: tracks in several codecs,
# layouts and rates, with container tags, plus a few broken inputs that ingest must record
# (silence, a too-short file, a truncated file, a missing file). Writes OUT/manifest.csv.
# Usage: bench/synthetic-corpus.sh OUT
set -euo pipefail
out=${1:?usage: synthetic-corpus.sh OUT}
version=1
if [ -f "$out/.complete" ] && [ "$(cat "$out/.complete")" = "$version" ]; then
  echo "demo corpus: $out is up to date"
  exit 0
fi
rm -rf "$out.tmp"
mkdir -p "$out.tmp/audio"
cd "$out.tmp"

ff() { ffmpeg -nostdin -hide_banner -loglevel error -y "$@"; }

# name  seconds  base-Hz  channels  rate   codec-args (comma-separated)               genre          title
tracks=(
  "piano-morning   65  262 2 44100 -c:a,libmp3lame,-b:a,128k  Classical    Morning_Etude"
  "night-drive     95  196 2 48000 -c:a,libvorbis,-q:a,3      Synthwave    Night_Drive"
  "rain-loop       70  330 1 22050 -c:a,flac                  Ambient      Rain_Loop"
  "brass-fanfare   40  392 2 44100 -c:a,aac,-b:a,128k         Soundtrack   Fanfare"
  "cello-suite     61  131 2 48000 -c:a,libopus,-b:a,96k      Classical    Cello_Suite"
  "surround-demo   45  220 6 48000 -c:a,flac                  Electronic   Surround_Test"
  "lofi-beat       92  440 2 32000 -c:a,pcm_s16le             Lo-Fi        Lofi_Beat"
  "phone-memo      36  523 1  8000 -c:a,pcm_s16le             Field        Phone_Memo"
  "organ-hymn      80  175 2 44100 -c:a,libvorbis,-q:a,2      Gospel       Organ_Hymn"
  "synth-arp       55  659 2 44100 -c:a,libmp3lame,-b:a,96k   Electronic   Synth_Arp"
)
echo "track_id,path,start_s,end_s,split" > manifest.csv
i=0
for t in "${tracks[@]}"; do
  read -r name secs hz ch rate codec genre title <<<"$t"
  i=$((i + 1))
  case "$codec" in
    *libmp3lame*) ext=mp3 ;; *libvorbis*) ext=ogg ;; *libopus*) ext=opus ;;
    *aac*) ext=m4a ;; *flac*) ext=flac ;; *) ext=wav ;;
  esac
  # A chord with a slow tremolo and a little seeded noise, so codecs and silence checks have work.
  ff -f lavfi -i "sine=frequency=$hz:duration=$secs:sample_rate=$rate" \
     -f lavfi -i "sine=frequency=$((hz * 5 / 4)):duration=$secs:sample_rate=$rate" \
     -f lavfi -i "anoisesrc=d=$secs:r=$rate:a=0.03:seed=$i" \
     -filter_complex "[0][1][2]amix=inputs=3:normalize=0,volume=0.4,tremolo=f=0.$i:d=0.5" \
     -ac "$ch" -metadata title="${title//_/ }" -metadata artist="Demo Ensemble" \
     -metadata genre="$genre" -metadata comment="generated demo track $i, $genre" \
     ${codec//,/ } "audio/$name.$ext"
  split=train; [ $((i % 5)) -eq 0 ] && split=test
  echo "$name,audio/$name.$ext,,,$split" >> manifest.csv
done
# A 40-second segment of a longer file, as AudioSet and MusicCaps manifests give them.
echo "night-drive-segment,audio/night-drive.ogg,20,60,valid" >> manifest.csv
# Inputs that must be recorded, not fatal.
ff -f lavfi -i "anullsrc=r=44100:cl=stereo" -t 35 -c:a flac audio/silence.flac
echo "silence,audio/silence.flac,,,train" >> manifest.csv
ff -f lavfi -i "sine=frequency=440:duration=12" -c:a libvorbis audio/jingle.ogg
echo "jingle,audio/jingle.ogg,,,train" >> manifest.csv
head -c 200000 audio/piano-morning.mp3 > audio/cut-download.mp3
echo "cut-download,audio/cut-download.mp3,,,train" >> manifest.csv
echo "lost-track,audio/lost-track.wav,,,train" >> manifest.csv

cd - >/dev/null
rm -rf "$out"
mv "$out.tmp" "$out"
echo "$version" > "$out/.complete"
echo "demo corpus: $(($(wc -l < "$out/manifest.csv") - 1)) rows in $out/manifest.csv"
