/* err.h - human-readable error messages that travel beside -errno codes.
 *
 * Every fallible function returns 0 or a negative errno.  Parsers and the
 * archive layer additionally take an optional `struct npz_err *`; passing
 * NULL is always allowed and makes npz_err_set() a no-op.
 */
#ifndef NPZFS_ERR_H
#define NPZFS_ERR_H

#define NPZ_ERR_MSG_MAX 256

struct npz_err {
	char msg[NPZ_ERR_MSG_MAX];	/* NUL-terminated, "" when unset */
};

/* Set err->msg from a printf format (truncated to fit).  NULL err: no-op. */
void npz_err_set(struct npz_err *err, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Prefix the existing message: "prefix: old message".  NULL err: no-op. */
void npz_err_prefix(struct npz_err *err, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Clear the message. NULL err: no-op. */
void npz_err_clear(struct npz_err *err);


/* Daemon log: one line per call, to stderr (foreground) or syslog.
 * Thread-safe.  npz_log_to_syslog() is called once by main before the
 * daemon detaches. */
void npz_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void npz_log_to_syslog(void);

#endif
