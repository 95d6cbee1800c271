/* zipfmt.c - the zip records our commits (clone and copy) write: local headers,
 * central-directory entries and the end records (APPNOTE 4.3.7, 4.3.12,
 * 4.3.14-16, zip64 extra 4.5.3), the way Python's zipfile writes them.
 *  Invariant: a 32-bit field holds 0xffffffff exactly when its value
 *  does not fit, and then the value is in the zip64 extra field, whose
 *  fields appear in APPNOTE's order, only those that overflowed
 *  (central) or both sizes (local). */
#include <string.h>
#include <time.h>

#include "zip_internal.h"

#define U32_MAX_FIELD 0xffffffffu

static uint32_t field32(uint64_t v)
{
	return v >= U32_MAX_FIELD ? U32_MAX_FIELD : (uint32_t)v;
}

bool ar_local_needs_zip64(uint64_t size)
{
	/* zipfile's rule for content of unknown compressed size: deflate may
	 * grow it a little */
	return size >= U32_MAX_FIELD / 105 * 100;
}

size_t ar_local_header_len(const struct zip_entry *e, bool zip64)
{
	return 30 + (size_t)e->name_len + (zip64 ? 20 : 0) + e->pad;
}

uint16_t ar_local_pad(const struct zip_entry *e, bool zip64, uint64_t lh_off)
{
	uint64_t data = lh_off + 30 + e->name_len + (zip64 ? 20 : 0);
	uint32_t align = e->size >= AR_ALIGN_BIG_MIN ? AR_ALIGN_BIG
						     : AR_ALIGN_SMALL;
	uint32_t pad = (uint32_t)((align - data % align) % align);

	if (e->method != ARCHIVE_STORE)
		return 0;
	while (pad && pad < AR_PAD_MIN)
		pad += align;
	return (uint16_t)pad;
}

size_t ar_local_header(unsigned char *p, const struct zip_entry *e,
		       bool zip64)
{
	put32(p, SIG_LOCAL);
	put16(p + 4, zip64 && e->needed < 45 ? 45 : e->needed);
	put16(p + 6, e->flags);
	put16(p + 8, e->method);
	put16(p + 10, e->time);
	put16(p + 12, e->date);
	put32(p + 14, e->crc);
	put32(p + 18, zip64 ? U32_MAX_FIELD : (uint32_t)e->comp_size);
	put32(p + 22, zip64 ? U32_MAX_FIELD : (uint32_t)e->size);
	put16(p + 26, e->name_len);
	put16(p + 28, (uint16_t)((zip64 ? 20 : 0) + e->pad));
	memcpy(p + 30, e->name, e->name_len);
	p += 30 + e->name_len;
	if (zip64) {
		put16(p, 1);
		put16(p + 2, 16);
		put64(p + 4, e->size);
		put64(p + 12, e->comp_size);
		p += 20;
	}
	if (e->pad) {
		put16(p, AR_PAD_ID);
		put16(p + 2, (uint16_t)(e->pad - 4));
		put16(p + 4, e->size >= AR_ALIGN_BIG_MIN ? AR_ALIGN_BIG
							  : AR_ALIGN_SMALL);
		memset(p + 6, 0, e->pad - AR_PAD_MIN);
	}
	return ar_local_header_len(e, zip64);
}

/* Bytes of the central entry's zip64 extra field (0: none). */
static size_t central_zip64_len(const struct zip_entry *e)
{
	size_t n = (e->size >= U32_MAX_FIELD) + (e->comp_size >= U32_MAX_FIELD)
		   + (e->lh_off >= U32_MAX_FIELD);

	return n ? 4 + 8 * n : 0;
}

size_t ar_central_len(const struct zip_entry *e)
{
	return 46 + (size_t)e->name_len + central_zip64_len(e);
}

size_t ar_central_entry(unsigned char *p, const struct zip_entry *e)
{
	size_t x = central_zip64_len(e);
	uint16_t needed = x && e->needed < 45 ? 45 : e->needed;
	unsigned char *f;

	put32(p, SIG_CENTRAL);
	put16(p + 4, e->made_by);
	put16(p + 6, needed);
	put16(p + 8, e->flags);
	put16(p + 10, e->method);
	put16(p + 12, e->time);
	put16(p + 14, e->date);
	put32(p + 16, e->crc);
	put32(p + 20, field32(e->comp_size));
	put32(p + 24, field32(e->size));
	put16(p + 28, e->name_len);
	put16(p + 30, (uint16_t)x);
	memset(p + 32, 0, 6);	/* comment length, disk, internal attr */
	put32(p + 38, e->ext_attr);
	put32(p + 42, field32(e->lh_off));
	memcpy(p + 46, e->name, e->name_len);
	f = p + 46 + e->name_len;
	if (x) {
		put16(f, 1);
		put16(f + 2, (uint16_t)(x - 4));
		f += 4;
		if (e->size >= U32_MAX_FIELD) {
			put64(f, e->size);
			f += 8;
		}
		if (e->comp_size >= U32_MAX_FIELD) {
			put64(f, e->comp_size);
			f += 8;
		}
		if (e->lh_off >= U32_MAX_FIELD)
			put64(f, e->lh_off);
	}
	return ar_central_len(e);
}

size_t ar_central_moved(unsigned char *dst, const unsigned char *src,
			    size_t len, uint64_t off)
{
	size_t name_len = get16(src + 28), xlen = get16(src + 30);
	const unsigned char *x = src + 46 + name_len, *xend = x + xlen;
	size_t nsizes = (get32(src + 24) == 0xffffffffu) +
			(get32(src + 20) == 0xffffffffu);
	bool off64 = get32(src + 42) == 0xffffffffu;
	const unsigned char *z = NULL;	/* the zip64 extra's data */
	size_t at, grow;

	memcpy(dst, src, len);
	while (xend - x >= 4) {
		uint16_t id = get16(x), sz = get16(x + 2);

		if (sz > xend - x - 4)
			break;
		if (id == 0x0001) {
			z = x + 4;
			if (off64 && sz >= 8 * (nsizes + 1)) {
				put64(dst + (z - src) + 8 * nsizes, off);
				return len;
			}
			break;
		}
		x += 4u + sz;
	}
	if (off < 0xffffffffu) {
		put32(dst + 42, (uint32_t)off);
		return len;
	}
	/* a zip64 offset field: into the zip64 extra after its sizes, or a
	 * new zip64 extra at the end of the extra field */
	grow = z ? 8 : 12;
	if (xlen + grow > UINT16_MAX ||
	    (z && get16(z - 2) < 8 * nsizes))
		return 0;
	at = z ? (size_t)(z - src) + 8 * nsizes : 46 + name_len + xlen;
	memcpy(dst + at + grow, src + at, len - at);
	if (z) {
		put64(dst + at, off);
		put16(dst + (z - src) - 2, (uint16_t)(get16(z - 2) + 8));
	} else {
		put16(dst + at, 0x0001);
		put16(dst + at + 2, 8);
		put64(dst + at + 4, off);
	}
	put16(dst + 30, (uint16_t)(xlen + grow));
	put32(dst + 42, 0xffffffffu);
	if (get16(src + 6) < 45)
		put16(dst + 6, 45);
	return len + grow;
}

size_t ar_end_records(unsigned char *p, uint64_t entries, uint64_t cd_off,
		      uint64_t cd_size)
{
	bool zip64 = entries >= 0xffff || cd_off >= U32_MAX_FIELD ||
		     cd_size >= U32_MAX_FIELD;
	unsigned char *q = p;

	if (zip64) {
		put32(q, SIG_EOCD64);
		put64(q + 4, 44);		/* size of the rest */
		put16(q + 12, (3 << 8) | 45);	/* made by: Unix, 4.5 */
		put16(q + 14, 45);
		memset(q + 16, 0, 8);		/* disk numbers */
		put64(q + 24, entries);
		put64(q + 32, entries);
		put64(q + 40, cd_size);
		put64(q + 48, cd_off);
		q += 56;
		put32(q, SIG_EOCD64_LOC);
		put32(q + 4, 0);
		put64(q + 8, cd_off + cd_size);	/* the zip64 end record */
		put32(q + 16, 1);
		q += 20;
	}
	put32(q, SIG_EOCD);
	memset(q + 4, 0, 4);
	put16(q + 8, entries >= 0xffff ? 0xffff : (uint16_t)entries);
	put16(q + 10, entries >= 0xffff ? 0xffff : (uint16_t)entries);
	put32(q + 12, field32(cd_size));
	put32(q + 16, field32(cd_off));
	put16(q + 20, 0);
	return (size_t)(q + 22 - p);
}

void ar_dos_time(time_t t, uint16_t *dtime, uint16_t *ddate)
{
	struct tm tm;

	if (!localtime_r(&t, &tm) || tm.tm_year < 80) {
		*dtime = 0;
		*ddate = (0 << 9) | (1 << 5) | 1;	/* 1980-01-01 */
		return;
	}
	if (tm.tm_year > 207)
		tm.tm_year = 207;
	*dtime = (uint16_t)(tm.tm_hour << 11 | tm.tm_min << 5 | tm.tm_sec / 2);
	*ddate = (uint16_t)((tm.tm_year - 80) << 9 | (tm.tm_mon + 1) << 5 |
			    tm.tm_mday);
}
