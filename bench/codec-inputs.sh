# Sourced by the ingest benchmarks (ingest-vs-ffmpeg.sh, ingest-profile.sh): the codecs users bring,
# made from the Vorbis originals with the ffmpeg CLI, into $CIN/<codec>/ (kept between runs).
# ext_of CODEC: the file extension. codec_input CODEC SOURCE.ogg: prints the path of SOURCE in CODEC,
# transcoding it first when it is not there yet (Vorbis: a link to the original).
ext_of() { case $1 in opus) echo opus ;; vorbis) echo ogg ;; mp3) echo mp3 ;; aac) echo m4a ;; flac) echo flac ;; esac; }
codec_input() {
    local c=$1 f=$2 o
    o=$CIN/$c/$(basename "$f" .ogg).$(ext_of "$c")
    mkdir -p "$CIN/$c"
    if [[ ! -s $o ]]; then
        case $c in
            vorbis) ln -sf "$f" "$o" ;;
            opus) ffmpeg -nostdin -loglevel error -y -i "$f" -ar 48000 -c:a libopus -b:a 128k "$o" ;;
            mp3) ffmpeg -nostdin -loglevel error -y -i "$f" -c:a libmp3lame -b:a 192k "$o" ;;
            aac) ffmpeg -nostdin -loglevel error -y -i "$f" -ar 48000 -c:a aac -b:a 192k "$o" ;;
            flac) ffmpeg -nostdin -loglevel error -y -i "$f" -ar 48000 -sample_fmt s16 -c:a flac "$o" ;;
            *) echo "unknown codec $c" >&2; return 1 ;;
        esac
    fi
    echo "$o"
}
