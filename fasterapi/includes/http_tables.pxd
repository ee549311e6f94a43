# Declarations of fa_http_tables.h: byte-class tables for HTTP field syntax
# (RFC 9110 §5.5, §5.6.2) and JSON string escaping (RFC 8259 §7).  All pure
# C, no Python API, so everything is nogil.
from libc.stdint cimport int64_t, uint64_t

cdef extern from "fa_http_tables.h" nogil:
    const unsigned char fa_tchar[256]
    const unsigned char fa_field_vchar[256]
    const unsigned char fa_json_esc_len[256]

    enum:
        FA_H_OTHER
        FA_H_CONTENT_LENGTH
        FA_H_TRANSFER_ENCODING
        FA_H_CONNECTION
        FA_H_DATE
        FA_H_SERVER
        FA_H_CONTENT_TYPE

    size_t fa_json_escaped_len(const unsigned char *s, size_t n) noexcept
    size_t fa_json_escape(char *dst, const unsigned char *s, size_t n) noexcept
    size_t fa_scan_token(const unsigned char *s, size_t n) noexcept
    size_t fa_scan_field_value(const unsigned char *s, size_t n) noexcept
    int fa_header_kind(const char *s, size_t n) noexcept
    int fa_parse_content_length(const char *s, size_t n, int64_t *out) noexcept
    int fa_list_has_token(const char *s, size_t n, const char *tok, size_t toklen,
                          int last_only) noexcept
    size_t fa_u64_to_dec_backwards(char *end, uint64_t v) noexcept
    size_t fa_size_to_hex_backwards(char *end, uint64_t v) noexcept
