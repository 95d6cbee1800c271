/* err.c - human-readable error messages beside -errno codes. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

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
	char old[NPZ_ERR_MSG_MAX];
	size_t n;
	va_list ap;

	if (!err)
		return;
	memcpy(old, err->msg, sizeof(old));
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
	n = strlen(err->msg);
	if (old[0] && n < sizeof(err->msg))
		snprintf(err->msg + n, sizeof(err->msg) - n, ": %s", old);
}

void npz_err_clear(struct npz_err *err)
{
	if (err)
		err->msg[0] = '\0';
}
