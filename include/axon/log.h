/* axon/log.h: a small leveled logger to stderr (text or JSON lines).
 *
 * Lines look like Redis's: `12345:M 25 Nov 2026 12:00:00.123 * message`,
 * or with AX_LOG_JSON: {"ts":"2026-11-25T12:00:00.123Z","level":"info",…}. */
#ifndef AXON_LOG_H
#define AXON_LOG_H

#include "error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum ax_log_level { AX_LOG_DEBUG, AX_LOG_INFO, AX_LOG_WARN, AX_LOG_ERROR } ax_log_level;

AX_API void ax_log_set_level(ax_log_level level);
AX_API void ax_log_set_json(int on);
AX_API int ax_log_enabled(ax_log_level level);
/* Append log lines to `path` instead of stderr (NULL or "": stderr again).
 * 0 or a code (the old destination stays on failure). */
AX_API int ax_log_set_file(const char *path);
/* Open the log file again (after logrotate moved it; call on SIGHUP). */
AX_API int ax_log_reopen(void);
AX_API void ax_log(ax_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#ifdef __cplusplus
}
#endif
#endif
