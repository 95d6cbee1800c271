/* test.h - minimal unit-test harness (after redis's testhelp.h).
 * test_cond(descr, expr) records a result; test_report() prints
 * "N passed, M failed" as the last line and returns the exit status. */
#ifndef NPZFS_TEST_H
#define NPZFS_TEST_H

#include <stdio.h>
#include <stdlib.h>

static int test_passed_, test_failed_;

#define test_cond(descr, _c) do { \
	if (_c) { \
		test_passed_++; \
	} else { \
		test_failed_++; \
		printf("FAIL %s:%d: %s\n", __FILE__, __LINE__, (descr)); \
	} \
} while (0)

static inline int test_report(void)
{
	printf("%d passed, %d failed\n", test_passed_, test_failed_);
	return test_failed_ ? 1 : 0;
}

/* The whole file at path (malloc'ed, *len bytes), or NULL. */
static inline unsigned char *test_slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	unsigned char *b;
	long n;

	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	b = malloc(n > 0 ? (size_t)n : 1);
	if (b && n > 0 && fread(b, 1, (size_t)n, f) != (size_t)n) {
		free(b);
		b = NULL;
	}
	fclose(f);
	*len = n > 0 ? (size_t)n : 0;
	return b;
}

#endif
