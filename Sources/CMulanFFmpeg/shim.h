#ifndef MULAN_CFFMPEG_SHIM_H
#define MULAN_CFFMPEG_SHIM_H
#include <libavformat/avformat.h>
#include <libavcodec/avcodec.h>
#include <libavutil/avutil.h>
#include <libavutil/channel_layout.h>
#include <libavutil/opt.h>
#include <libavutil/sha.h>
#include <libavutil/dict.h>
#include <libavutil/tx.h>
#include <libswresample/swresample.h>

// AVERROR(e), AVERROR_EOF and AV_NOPTS_VALUE are function-like or cast macros
// that Swift's importer cannot see; these inline functions expose them.
static inline int mulan_averror(int posix_errno) { return AVERROR(posix_errno); }
static inline int mulan_averror_eof(void) { return AVERROR_EOF; }
static inline int64_t mulan_av_nopts_value(void) { return AV_NOPTS_VALUE; }
static inline int mulan_averror_invaliddata(void) { return AVERROR_INVALIDDATA; }
static inline int mulan_averror_stream_not_found(void) { return AVERROR_STREAM_NOT_FOUND; }
static inline int mulan_averror_decoder_not_found(void) { return AVERROR_DECODER_NOT_FOUND; }
// AV_TIME_BASE_Q is a compound literal macro.
static inline AVRational mulan_av_time_base_q(void) { return (AVRational){1, AV_TIME_BASE}; }

#endif
