/* fuzz_float_parse.c - libFuzzer target: text_to_double() and text_to_float()
 * against glibc's strtod and strtof (both correctly rounded), bit for bit.
 *
 * The input is one token.  Whenever our parser reads it as a number
 * (NUM_OK), strtod_l/strtof_l in the C locale must read the whole token too
 * and give the same bits (our grammar is a part of theirs: no hex, no
 * spaces); nan/inf spelled out must be nan/inf; a token we call bad is not
 * compared (strtod takes hex floats, leading spaces, "infinity" prefixes). */
#include <locale.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* decimal.c (src/text/parse_internal.h) */
int text_to_double(const char *s, size_t n, double *out);
int text_to_float(const char *s, size_t n, float *out);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum { NUM_OK, NUM_BAD, NUM_SPECIAL };

static void fail(const char *what, const char *s, uint64_t got, uint64_t want)
{
	fprintf(stderr, "fuzz_float_parse: %s: \"%.200s\": got %#llx want %#llx\n",
		what, s, (unsigned long long)got, (unsigned long long)want);
	abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static locale_t c;
	char *s, *end;
	double d, sd;
	float f, sf;
	uint64_t a, b;
	uint32_t x, y;
	int r64, r32;

	if (size > 4096)
		return 0;
	if (!c)
		c = newlocale(LC_ALL_MASK, "C", (locale_t)0);
	s = malloc(size + 1);
	if (!s)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	r64 = text_to_double(s, size, &d);
	r32 = text_to_float(s, size, &f);
	if (r64 != r32)
		fail("float64 and float32 disagree on the token", s, (uint64_t)r64,
		     (uint64_t)r32);
	if (r64 == NUM_SPECIAL && (!(isnan(d) || isinf(d)) || !(isnan(f) || isinf(f))))
		fail("special is not nan/inf", s, 0, 0);
	if (r64 == NUM_OK) {
		sd = strtod_l(s, &end, c);
		if (end != s + size)
			fail("strtod does not read the whole token", s,
			     (uint64_t)(end - s), size);
		sf = strtof_l(s, &end, c);
		memcpy(&a, &d, 8);
		memcpy(&b, &sd, 8);
		if (a != b)
			fail("float64", s, a, b);
		memcpy(&x, &f, 4);
		memcpy(&y, &sf, 4);
		if (x != y)
			fail("float32", s, x, y);
	}
	free(s);
	return 0;
}
