/* live_codec.h: the few facts about codecs the live relay needs and
 * libavformat does not export: an HEVC decoder configuration record
 * (hvcC, ISO/IEC 14496-15 8.3.3) from the parameter sets of an MPEG-TS
 * upload, the RFC 6381 codecs string of one for MediaSource, and the
 * duration of an Opus packet (RFC 6716 3.1).
 *
 * Pure functions over bytes from the publisher: no I/O, no allocation,
 * every read bounded by the lengths given (tests/fuzz/fuzz_live_codec.c). */
#ifndef AXON_HUB_LIVE_CODEC_H
#define AXON_HUB_LIVE_CODEC_H

#include <stddef.h>
#include <stdint.h>

/* An hvcC with one VPS, SPS and PPS (NAL units with their 2-byte
 * headers, no start codes), 4-byte NAL lengths, into out: its length, or
 * -1 (too small, or an SPS whose profile_tier_level cannot be read).
 * Chroma format and bit depths come from the SPS when it reads that far,
 * else 4:2:0 and 8 bits. */
int live_hevc_config(const uint8_t *vps, size_t vps_len, const uint8_t *sps, size_t sps_len,
                     const uint8_t *pps, size_t pps_len, uint8_t *out, size_t cap);

/* "hvc1.P.C.TL.B..." (ISO/IEC 14496-15 E.3) from an hvcC; "hvc1" alone
 * when it is too short. */
void live_hevc_codecs(const uint8_t *hvcc, size_t len, char *buf, size_t cap);

/* Samples at 48 kHz in an Opus packet (from its TOC byte and frame
 * count), 0 when it is malformed. */
unsigned live_opus_samples(const uint8_t *pkt, size_t len);

#endif
