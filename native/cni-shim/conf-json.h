/*
 * The CNI network configuration as the shim reads it before any connection:
 * a complete JSON syntax check and the few top-level members the shim judges
 * itself (conf-json.c).
 */
#ifndef CORRAL_CNI_CONF_JSON_H
#define CORRAL_CNI_CONF_JSON_H
#include <stddef.h>
#include <sys/socket.h>
#include <sys/un.h>

/* What the shim needs from the config's top-level object; the last of duplicate keys wins, as with JSON.parse. */
struct conf_fields {
  int version_kind, socket_kind, name_kind, type_kind; /* 0 absent, 1 a usable string, 2 not a string, 3 a string too long or holding NUL */
  char version[32];
  char name[256];
  char type[16];
  char socket[sizeof(((struct sockaddr_un *)0)->sun_path)];
};

static inline int is_digit(char c) { return c >= '0' && c <= '9'; }

/* The index of the first byte at or after i that is not JSON whitespace. */
size_t skip_ws(const char *b, size_t n, size_t i);

/* Whether b[0..n) is one valid JSON document (RFC 8259); when not, why says where and what. */
int json_valid(const char *b, size_t n, char *why, size_t whylen);

/* Reads the members of struct conf_fields from a valid JSON document whose top level is an object. */
void read_fields(const char *b, size_t n, struct conf_fields *f);

#endif
