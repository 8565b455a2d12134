/* The network configuration's JSON, read by the CNI shim before it connects (see conf-json.h). */
#include "conf-json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * The shim decides what it can without the daemon, so that only a genuinely
 * unreachable daemon yields code 11 (a runtime retries 11; a config that can
 * never work must not look transient). It therefore checks the whole JSON
 * syntax (RFC 8259, as JSON.parse does on the daemon side: no nesting limit,
 * the parser is iterative) and reads the few top-level members it needs.
 */

size_t skip_ws(const char *b, size_t n, size_t i) {
  while (i < n && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r')) i++;
  return i;
}

static int is_hex(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

/* i points at '"'; returns the index after the closing quote, or 0 when the string is malformed. */
static size_t scan_string(const char *b, size_t n, size_t i) {
  for (i++; i < n; i++) {
    unsigned char c = (unsigned char)b[i];
    if (c == '"') return i + 1;
    if (c < 0x20) return 0;
    if (c != '\\') continue;
    if (++i >= n) return 0;
    switch (b[i]) {
      case '"': case '\\': case '/': case 'b': case 'f': case 'n': case 'r': case 't': break;
      case 'u':
        if (i + 4 >= n || !is_hex(b[i + 1]) || !is_hex(b[i + 2]) || !is_hex(b[i + 3]) || !is_hex(b[i + 4])) return 0;
        i += 4;
        break;
      default: return 0;
    }
  }
  return 0;
}

/* A number at i: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? ; returns the index after it, or 0. */
static size_t scan_number(const char *b, size_t n, size_t i) {
  if (i < n && b[i] == '-') i++;
  if (i >= n || !is_digit(b[i])) return 0;
  if (b[i] == '0') i++;
  else while (i < n && is_digit(b[i])) i++;
  if (i < n && b[i] == '.') {
    if (++i >= n || !is_digit(b[i])) return 0;
    while (i < n && is_digit(b[i])) i++;
  }
  if (i < n && (b[i] == 'e' || b[i] == 'E')) {
    if (++i < n && (b[i] == '+' || b[i] == '-')) i++;
    if (i >= n || !is_digit(b[i])) return 0;
    while (i < n && is_digit(b[i])) i++;
  }
  return i;
}

static size_t scan_literal(const char *b, size_t n, size_t i, const char *lit) {
  size_t l = strlen(lit);
  return (n - i >= l && memcmp(b + i, lit, l) == 0) ? i + l : 0;
}

/*
 * Whether b[0..n) is one JSON value and nothing else. `why` gets a short
 * reason on failure. The open containers are kept in `stack` (one byte each,
 * at most n of them), so nesting depth costs heap, not C stack.
 */
int json_valid(const char *b, size_t n, char *why, size_t whylen) {
  char *stack = malloc(n + 1);
  size_t sp = 0, i = skip_ws(b, n, 0);
  int ok = 0;
  if (!stack) { snprintf(why, whylen, "out of memory"); return 0; }
  enum { VALUE, KEY, AFTER } state = VALUE;
  for (;;) {
    if (state == VALUE) {
      i = skip_ws(b, n, i);
      if (i >= n) { snprintf(why, whylen, "unexpected end of input"); break; }
      char c = b[i];
      size_t next = 0;
      if (c == '{' || c == '[') {
        stack[sp++] = c;
        i = skip_ws(b, n, i + 1);
        if (i < n && b[i] == (c == '{' ? '}' : ']')) { sp--; i++; state = AFTER; }
        else state = c == '{' ? KEY : VALUE;
        continue;
      }
      if (c == '"') next = scan_string(b, n, i);
      else if (c == '-' || is_digit(c)) next = scan_number(b, n, i);
      else if (c == 't') next = scan_literal(b, n, i, "true");
      else if (c == 'f') next = scan_literal(b, n, i, "false");
      else if (c == 'n') next = scan_literal(b, n, i, "null");
      if (!next) { snprintf(why, whylen, "unexpected %s at offset %zu", c == '"' ? "string" : "token", i); break; }
      i = next;
      state = AFTER;
    } else if (state == KEY) {
      i = skip_ws(b, n, i);
      size_t next = (i < n && b[i] == '"') ? scan_string(b, n, i) : 0;
      if (!next) { snprintf(why, whylen, "expected a member name at offset %zu", i); break; }
      i = skip_ws(b, n, next);
      if (i >= n || b[i] != ':') { snprintf(why, whylen, "expected ':' at offset %zu", i); break; }
      i++;
      state = VALUE;
    } else {
      i = skip_ws(b, n, i);
      if (sp == 0) {
        if (i == n) ok = 1;
        else snprintf(why, whylen, "unexpected data after the value at offset %zu", i);
        break;
      }
      char top = stack[sp - 1];
      if (i < n && b[i] == ',') { i++; state = top == '{' ? KEY : VALUE; continue; }
      if (i < n && b[i] == (top == '{' ? '}' : ']')) { sp--; i++; continue; }
      snprintf(why, whylen, "expected ',' or '%c' at offset %zu", top == '{' ? '}' : ']', i);
      break;
    }
  }
  free(stack);
  return ok;
}

/* Skips one value of a document already known to be valid JSON. */
static size_t skip_value(const char *b, size_t n, size_t i) {
  size_t depth = 0;
  do {
    char c = b[i];
    if (c == '"') { i = scan_string(b, n, i); continue; }
    if (c == '{' || c == '[') depth++;
    else if (c == '}' || c == ']') depth--;
    else if (depth == 0) { /* a scalar at top level: up to the next delimiter */
      while (i < n && b[i] != ',' && b[i] != '}' && b[i] != ']' && b[i] != ' ' && b[i] != '\t' && b[i] != '\n' && b[i] != '\r') i++;
      return i;
    }
    i++;
  } while (depth > 0 && i < n);
  return i;
}

static void put_utf8(char *out, size_t *len, unsigned cp) {
  if (cp < 0x80) out[(*len)++] = (char)cp;
  else if (cp < 0x800) { out[(*len)++] = (char)(0xC0 | (cp >> 6)); out[(*len)++] = (char)(0x80 | (cp & 0x3F)); }
  else if (cp < 0x10000) {
    out[(*len)++] = (char)(0xE0 | (cp >> 12)); out[(*len)++] = (char)(0x80 | ((cp >> 6) & 0x3F)); out[(*len)++] = (char)(0x80 | (cp & 0x3F));
  } else {
    out[(*len)++] = (char)(0xF0 | (cp >> 18)); out[(*len)++] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[(*len)++] = (char)(0x80 | ((cp >> 6) & 0x3F)); out[(*len)++] = (char)(0x80 | (cp & 0x3F));
  }
}

static unsigned hex4(const char *p) {
  unsigned v = 0;
  for (int k = 0; k < 4; k++) v = v * 16 + (unsigned)(is_digit(p[k]) ? p[k] - '0' : (p[k] | 0x20) - 'a' + 10);
  return v;
}

/*
 * Decodes the (valid) JSON string at i into out (NUL-terminated, escapes
 * resolved, UTF-8). Returns 1, or 0 when it does not fit in outlen or holds a
 * NUL character (neither can be a path or a version).
 */
static int decode_string(const char *b, size_t n, size_t i, char *out, size_t outlen) {
  size_t len = 0;
  for (i++; i < n && b[i] != '"'; i++) {
    if (len + 5 > outlen) return 0;
    if (b[i] != '\\') { out[len++] = b[i]; continue; }
    char e = b[++i];
    if (e == 'u') {
      unsigned cp = hex4(b + i + 1);
      i += 4;
      if (cp >= 0xD800 && cp < 0xDC00 && i + 6 < n && b[i + 1] == '\\' && b[i + 2] == 'u') {
        unsigned lo = hex4(b + i + 3);
        if (lo >= 0xDC00 && lo < 0xE000) { cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00); i += 6; }
      }
      if (cp == 0) return 0;
      if (cp >= 0xD800 && cp < 0xE000) cp = 0xFFFD; /* a lone surrogate, as UTF-8 output makes of it */
      put_utf8(out, &len, cp);
    } else {
      out[len++] = e == 'b' ? '\b' : e == 'f' ? '\f' : e == 'n' ? '\n' : e == 'r' ? '\r' : e == 't' ? '\t' : e;
    }
  }
  out[len] = 0;
  return memchr(out, 0, len) == NULL;
}


void read_fields(const char *b, size_t n, struct conf_fields *f) {
  char key[64];
  size_t i = skip_ws(b, n, 0) + 1;
  memset(f, 0, sizeof *f);
  for (;;) {
    i = skip_ws(b, n, i);
    if (i >= n || b[i] != '"') return; /* '}' of an empty object */
    int known = decode_string(b, n, i, key, sizeof key);
    i = skip_ws(b, n, scan_string(b, n, i));
    i = skip_ws(b, n, i + 1); /* ':' */
    if (known && strcmp(key, "cniVersion") == 0)
      f->version_kind = b[i] != '"' ? 2 : decode_string(b, n, i, f->version, sizeof f->version) ? 1 : 3;
    else if (known && strcmp(key, "daemonSocket") == 0)
      f->socket_kind = b[i] != '"' ? 2 : decode_string(b, n, i, f->socket, sizeof f->socket) ? 1 : 3;
    else if (known && strcmp(key, "name") == 0)
      f->name_kind = b[i] != '"' ? 2 : decode_string(b, n, i, f->name, sizeof f->name) ? 1 : 3;
    else if (known && strcmp(key, "type") == 0)
      f->type_kind = b[i] != '"' ? 2 : decode_string(b, n, i, f->type, sizeof f->type) ? 1 : 3;
    i = skip_ws(b, n, skip_value(b, n, i));
    if (i >= n || b[i] != ',') return;
    i++;
  }
}

