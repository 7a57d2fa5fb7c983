/* Entry names from image layers in normal form. Layers are hostile input:
 * whatever a name says, it must stay inside the image. ".." is clamped at
 * the image root (as "/.." is the root in Linux) rather than rejected, so
 * "../../etc/passwd" is "etc/passwd" of the image; this matches what
 * container runtimes do when they unpack layers, so images they accept
 * are accepted here. */
#ifndef CAPSA_ROOTFS_LAYER_PATH_H
#define CAPSA_ROOTFS_LAYER_PATH_H

#include <stddef.h>

#include "capsa.h"

#define LAYER_PATH_MAX 4096     /* bytes in an entry name or link target, as PATH_MAX */
#define LAYER_NAME_MAX 255      /* bytes in one component, as NAME_MAX */

/* The normal form of path (malloc'd): components separated by single
 * slashes, no leading slash, no "." or empty components, each ".."
 * removing the component before it and ignored at the root. "" is the
 * root itself. EINVAL when path is longer than LAYER_PATH_MAX or a
 * component longer than LAYER_NAME_MAX. */
char *layer_path_normalize(const char *path, capsa_error *err);

/* A copy of s fit for a one-line message: at most size - 1 bytes, bytes
 * outside printable ASCII shown as '?', cut short with "..." when long. */
const char *layer_path_printable(const char *s, char *buf, size_t size);

#endif
