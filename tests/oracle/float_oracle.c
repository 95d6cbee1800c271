/* float_oracle.c - the float parsers' bits for tests/integration/test_float_exact.py.
 *
 * Reads one token a line from stdin and prints, a line each,
 * "R64 BITS64 R32 BITS32": the return of text_to_double() and
 * text_to_float() (0 ok, 1 bad, 2 nan/inf spelled out) and the results'
 * IEEE bits in hex.  The script compares them with Python's float() and an
 * exact rational rounding, so the test never trusts C's own conversions. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* decimal.c (src/text/parse_internal.h) */
int text_to_double(const char *s, size_t n, double *out);
int text_to_float(const char *s, size_t n, float *out);

int main(void)
{
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;

	setvbuf(stdout, NULL, _IOFBF, 1 << 16);
	while ((len = getline(&line, &cap, stdin)) >= 0) {
		double d = 0;
		float f = 0;
		uint64_t b64;
		uint32_t b32;
		int r64, r32;

		if (len && line[len - 1] == '\n')
			len--;
		r64 = text_to_double(line, (size_t)len, &d);
		r32 = text_to_float(line, (size_t)len, &f);
		memcpy(&b64, &d, 8);
		memcpy(&b32, &f, 4);
		printf("%d %016" PRIx64 " %d %08" PRIx32 "\n", r64, b64, r32, b32);
	}
	free(line);
	return ferror(stdout) || fflush(stdout) ? 1 : 0;
}
