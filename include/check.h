/* check.h - `npzfs --check ARCHIVE`: verify an archive without mounting it.
 *
 * Knows the zip format only through archive.h and the npy format only
 * through npy.h.  Reads every member's data in bounded blocks: memory use
 * does not grow with the size of a member (only with the member count).
 */
#ifndef NPZFS_CHECK_H
#define NPZFS_CHECK_H

#include <stdio.h>

/* Verify the archive at path like `unzip -t`: every member's local header
 * against the central directory, its data (read or inflated in full) against
 * its size and CRC, where the members lie (no overlaps, none past the end of
 * the file or into the central directory), names that occur twice, and for
 * every member NAME.npy its npy header (it must parse, and header length +
 * itemsize * count must equal the member's size; object arrays only need a
 * header that parses).
 *
 * Writes one line per problem to out, "NAME: why" (control characters in
 * names as \xNN), then a summary "PATH: N members, M problems".  An archive
 * that cannot be opened at all (missing, unreadable, not a zip, damaged
 * central directory) is one problem: the single line "PATH: why".
 *
 * Returns the number of problems (0: the archive is sound), or -ENOMEM /
 * -EIO (out could not be written) when the check itself failed. */
int check_archive(const char *path, FILE *out);

#endif
