/* err.c - human-readable error messages beside -errno codes. */
#include <stdarg.h>
#include <stdio.h>
#include <stdbool.h>
#include <string.h>
#include <syslog.h>

#include "err.h"

void npz_err_set(struct npz_err *err, const char *fmt, ...)
{
	va_list ap;

	if (!err)
		return;
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
}

void npz_err_prefix(struct npz_err *err, const char *fmt, ...)
{
	char line[2 * NPZ_ERR_MSG_MAX + 2];
	size_t n;
	va_list ap;

	if (!err)
		return;
	va_start(ap, fmt);
	vsnprintf(line, NPZ_ERR_MSG_MAX, fmt, ap);
	va_end(ap);
	n = strlen(line);
	if (err->msg[0]) {
		memcpy(line + n, ": ", 2);
		memcpy(line + n + 2, err->msg, strlen(err->msg) + 1);
	}
	memcpy(err->msg, line, NPZ_ERR_MSG_MAX - 1);
	err->msg[NPZ_ERR_MSG_MAX - 1] = '\0';
}

void npz_err_clear(struct npz_err *err)
{
	if (err)
		err->msg[0] = '\0';
}

static bool log_syslog;

void npz_log_to_syslog(void)
{
	openlog("npzfs", LOG_PID, LOG_DAEMON);
	log_syslog = true;
}

void npz_log(const char *fmt, ...)
{
	char line[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (log_syslog)
		syslog(LOG_NOTICE, "%s", line);
	else
		fprintf(stderr, "npzfs: %s\n", line);	/* one fprintf: atomic line */
}
