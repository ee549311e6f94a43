/* fa_http_tables.h: byte-class tables and small scanners for writing HTTP/1.1
 * responses and JSON text.
 *
 * Rules this header keeps:
 *  - Pure functions of their arguments: no Python API, no allocation, no
 *    globals but the const tables, so every function is safe without the GIL.
 *  - Each table is one row per 16 bytes with the first byte in a comment, so
 *    a reviewer can check a single entry against the grammar cited above it.
 *  - The tables were generated once from the grammar (the rule is written
 *    next to each one) and are checked byte for byte by tests/test_response.py
 *    and tests/test_json.py against the same rule written in Python.
 */
#ifndef FA_HTTP_TABLES_H
#define FA_HTTP_TABLES_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* RFC 9110 §5.6.2:
 *   token = 1*tchar
 *   tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." /
 *           "^" / "_" / "`" / "|" / "~" / DIGIT / ALPHA
 * Field names are tokens (RFC 9110 §5.1). */
static const unsigned char fa_tchar[256] = {
    0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0, /* 0x00 */
    0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0, /* 0x10 */
    0,1,0,1,1,1,1,1,0,0,1,1,0,1,1,0, /* 0x20 */
    1,1,1,1,1,1,1,1,1,1,0,0,0,0,0,0, /* 0x30 */
    0,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1, /* 0x40 */
    1,1,1,1,1,1,1,1,1,1,1,0,0,0,1,1, /* 0x50 */
    1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1, /* 0x60 */
    1,1,1,1,1,1,1,1,1,1,1,0,1,0,1,0, /* 0x70 */
    0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0, /* 0x80 */
    0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0, /* 0x90 */
    0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0, /* 0xA0 */
    0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0, /* 0xB0 */
    0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0, /* 0xC0 */
    0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0, /* 0xD0 */
    0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0, /* 0xE0 */
    0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0, /* 0xF0 */
};

/* RFC 9110 §5.5:
 *   field-content = field-vchar [ 1*( SP / HTAB / field-vchar ) field-vchar ]
 *   field-vchar   = VCHAR / obs-text       (VCHAR = 0x21-0x7E, obs-text = 0x80-0xFF)
 * So a value byte is HTAB, SP, VCHAR or obs-text; every other CTL (NUL, CR,
 * LF, DEL, ...) is refused.  CR and LF are the header-injection bytes; NUL
 * must be refused as well (RFC 9110 §5.5: "MUST either reject the message or
 * replace each of those characters with SP"). */
static const unsigned char fa_field_vchar[256] = {
    0,0,0,0,0,0,0,0,0,1,0,0,0,0,0,0, /* 0x00 */
    0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0, /* 0x10 */
    1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1, /* 0x20 */
    1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1, /* 0x30 */
    1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1, /* 0x40 */
    1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1, /* 0x50 */
    1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1, /* 0x60 */
    1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,0, /* 0x70 */
    1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1, /* 0x80 */
    1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1, /* 0x90 */
    1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1, /* 0xA0 */
    1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1, /* 0xB0 */
    1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1, /* 0xC0 */
    1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1, /* 0xD0 */
    1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1, /* 0xE0 */
    1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1, /* 0xF0 */
};

/* RFC 8259 §7: '"', '\\' and U+0000-U+001F must be escaped; everything else
 * may be written as itself (UTF-8 for non-ASCII, §8.1).  The entry is the
 * length of the escaped form: 1 = copy, 2 = short escape (\" \\ \b \t \n \f
 * \r), 6 = \u00XX.  DEL and U+2028/2029 are left alone, as orjson and
 * json.dumps(ensure_ascii=False) do. */
static const unsigned char fa_json_esc_len[256] = {
    6,6,6,6,6,6,6,6,2,2,2,6,2,2,6,6, /* 0x00 */
    6,6,6,6,6,6,6,6,6,6,6,6,6,6,6,6, /* 0x10 */
    1,1,2,1,1,1,1,1,1,1,1,1,1,1,1,1, /* 0x20 */
    1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1, /* 0x30 */
    1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1, /* 0x40 */
    1,1,1,1,1,1,1,1,1,1,1,1,2,1,1,1, /* 0x50 */
    1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1, /* 0x60 */
    1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1, /* 0x70 */
    1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1, /* 0x80 */
    1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1, /* 0x90 */
    1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1, /* 0xA0 */
    1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1, /* 0xB0 */
    1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1, /* 0xC0 */
    1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1, /* 0xD0 */
    1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1, /* 0xE0 */
    1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1, /* 0xF0 */
};

static const char fa_hex_lower[16] = "0123456789abcdef";

/* Length of `s` once JSON-escaped (the quotes are not counted). */
static inline size_t fa_json_escaped_len(const unsigned char *s, size_t n)
{
    size_t out = 0;
    for (size_t i = 0; i < n; i++)
        out += fa_json_esc_len[s[i]];
    return out;
}

/* Write `s` JSON-escaped to `dst`, which has room for
 * fa_json_escaped_len(s, n) bytes; returns the bytes written. */
static inline size_t fa_json_escape(char *dst, const unsigned char *s, size_t n)
{
    char *d = dst;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = s[i];
        switch (fa_json_esc_len[c]) {
        case 1:
            *d++ = (char)c;
            break;
        case 2:
            *d++ = '\\';
            switch (c) {
            case '\b': *d++ = 'b'; break;
            case '\t': *d++ = 't'; break;
            case '\n': *d++ = 'n'; break;
            case '\f': *d++ = 'f'; break;
            case '\r': *d++ = 'r'; break;
            default:   *d++ = (char)c; break;   /* '"' and '\\' */
            }
            break;
        default:
            d[0] = '\\'; d[1] = 'u'; d[2] = '0'; d[3] = '0';
            d[4] = fa_hex_lower[c >> 4];
            d[5] = fa_hex_lower[c & 15];
            d += 6;
            break;
        }
    }
    return (size_t)(d - dst);
}

/* Index of the first byte of `s` that is not a tchar, or n if all are. */
static inline size_t fa_scan_token(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n && fa_tchar[s[i]])
        i++;
    return i;
}

/* Index of the first byte of `s` not allowed in a field value, or n. */
static inline size_t fa_scan_field_value(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n && fa_field_vchar[s[i]])
        i++;
    return i;
}

static inline unsigned char fa_ascii_lower(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + 32) : c;
}

/* ASCII case-insensitive equality of s[0:n] with the lower-case `lit`. */
static inline int fa_ieq(const char *s, size_t n, const char *lit, size_t litlen)
{
    if (n != litlen)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (fa_ascii_lower((unsigned char)s[i]) != (unsigned char)lit[i])
            return 0;
    return 1;
}

/* The response header fields the server has to know about. */
enum {
    FA_H_OTHER = 0,
    FA_H_CONTENT_LENGTH,
    FA_H_TRANSFER_ENCODING,
    FA_H_CONNECTION,
    FA_H_DATE,
    FA_H_SERVER,
    FA_H_CONTENT_TYPE
};

/* Classify a (valid token) field name; names are case-insensitive
 * (RFC 9110 §5.1).  Dispatch on the length first: most names cost one
 * compare of an integer. */
static inline int fa_header_kind(const char *s, size_t n)
{
    switch (n) {
    case 4:  return fa_ieq(s, n, "date", 4) ? FA_H_DATE : FA_H_OTHER;
    case 6:  return fa_ieq(s, n, "server", 6) ? FA_H_SERVER : FA_H_OTHER;
    case 10: return fa_ieq(s, n, "connection", 10) ? FA_H_CONNECTION : FA_H_OTHER;
    case 12: return fa_ieq(s, n, "content-type", 12) ? FA_H_CONTENT_TYPE : FA_H_OTHER;
    case 14: return fa_ieq(s, n, "content-length", 14) ? FA_H_CONTENT_LENGTH : FA_H_OTHER;
    case 17: return fa_ieq(s, n, "transfer-encoding", 17) ? FA_H_TRANSFER_ENCODING : FA_H_OTHER;
    default: return FA_H_OTHER;
    }
}

/* RFC 9110 §8.6: Content-Length = 1*DIGIT.  Strict: no sign, no spaces, no
 * list form; at most INT64_MAX (checked before the multiply, so it never
 * overflows).  Returns 0 and stores the value, or -1 if invalid. */
static inline int fa_parse_content_length(const char *s, size_t n, int64_t *out)
{
    int64_t v = 0;
    if (n == 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        unsigned d = (unsigned)(unsigned char)s[i] - '0';
        if (d > 9)
            return -1;
        if (v > (INT64_MAX - (int64_t)d) / 10)
            return -1;
        v = v * 10 + (int64_t)d;
    }
    *out = v;
    return 0;
}

static inline int fa_is_ows(char c)
{
    return c == ' ' || c == '\t';
}

/* Does the comma-separated list s[0:n] (RFC 9110 §5.6.1: elements separated
 * by OWS "," OWS, empty elements allowed) contain `tok` (lower case),
 * compared case-insensitively?  If `last_only`, only the last non-empty
 * element counts: RFC 9112 §6.1 requires chunked to be the final coding. */
static inline int fa_list_has_token(const char *s, size_t n,
                                    const char *tok, size_t toklen,
                                    int last_only)
{
    int found = 0;
    size_t i = 0;
    while (i <= n) {
        size_t a = i, b;
        while (i < n && s[i] != ',')
            i++;
        b = i;
        while (a < b && fa_is_ows(s[a]))
            a++;
        while (b > a && fa_is_ows(s[b - 1]))
            b--;
        if (b > a) {
            int eq = fa_ieq(s + a, b - a, tok, toklen);
            if (!last_only && eq)
                return 1;
            found = eq;
        }
        i++;    /* skip the comma (or step past the end) */
    }
    return found;
}

/* Write v in decimal so that it ends just before `end`; returns the number of
 * digits (at most 20 for a uint64_t). */
static inline size_t fa_u64_to_dec_backwards(char *end, uint64_t v)
{
    char *p = end;
    do {
        *--p = (char)('0' + (v % 10));
        v /= 10;
    } while (v);
    return (size_t)(end - p);
}

/* Write n in lower-case hex (no leading zeros) ending just before `end`;
 * returns the number of digits.  RFC 9112 §7.1: chunk-size = 1*HEXDIG. */
static inline size_t fa_size_to_hex_backwards(char *end, uint64_t v)
{
    char *p = end;
    do {
        *--p = fa_hex_lower[v & 15];
        v >>= 4;
    } while (v);
    return (size_t)(end - p);
}

#endif /* FA_HTTP_TABLES_H */
