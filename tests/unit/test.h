/* test.h - minimal unit-test harness (after redis's testhelp.h).
 * test_cond(descr, expr) records a result; test_report() prints
 * "N passed, M failed" as the last line and returns the exit status. */
#ifndef NPZFS_TEST_H
#define NPZFS_TEST_H

#include <stdio.h>

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

#endif
