/* test_writebehind.c - writes behind: order, draining, sticky errors. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "test.h"
#include "writebehind.h"

#define N (256u << 10)

static void test_order_and_drain(void)
{
	struct wb_file f = { 0 };
	FILE *tf = tmpfile();
	int fd = fileno(tf), ok = 1;
	unsigned char *a = malloc(N), *b = malloc(N), *got = malloc(3 * N);

	memset(a, 'a', N);
	memset(b, 'b', N);
	/* many overlapping writes: the last one of each range must win */
	for (int i = 0; i < 200 && ok; i++)
		ok = wb_pwrite(&f, fd, i % 2 ? b : a, N,
			       (uint64_t)(i % 3) * (N / 2)) == 0;
	test_cond("queued", ok);
	test_cond("small write after big ones", wb_pwrite(&f, fd, "xyz", 3, 1) == 0);
	test_cond("drained", wb_drain(&f) == 0 && f.queued == 0);
	test_cond("read back", pread(fd, got, 3 * N, 0) == (ssize_t)(N / 2 * 3 + N / 2));
	/* i = 199 (b) wrote at N/2; 198 (a) at 0; 197 (b) at N */
	test_cond("order kept", got[0] == 'a' && !memcmp(got + 1, "xyz", 3) &&
		  got[N / 2] == 'b' && got[N] == 'b' && got[N + N / 2 - 1] == 'b' &&
		  got[N / 2 - 1] == 'a');
	fclose(tf);
	free(a);
	free(b);
	free(got);
}

static void test_sticky_error(void)
{
	struct wb_file f = { 0 };
	unsigned char *a = calloc(1, N);
	int fd = open("/dev/null", O_RDONLY);	/* every write fails */

	test_cond("a failing write is queued", wb_pwrite(&f, fd, a, N, 0) == 0);
	test_cond("drain reports it", wb_drain(&f) == -EBADF);
	test_cond("later writes report it", wb_pwrite(&f, fd, a, N, 0) == -EBADF &&
		  wb_pwrite(&f, fd, a, 10, 0) == -EBADF);
	test_cond("still", wb_drain(&f) == -EBADF);
	close(fd);
	free(a);
}

int main(void)
{
	test_order_and_drain();
	test_sticky_error();
	return test_report();
}
