#ifndef BRIDGE_IPAM_CCURL_H
#define BRIDGE_IPAM_CCURL_H
// libcurl for the node agent. curl_easy_setopt and curl_easy_getinfo are variadic, which Swift
// cannot call, so each argument type gets a typed wrapper here.
#include <curl/curl.h>

typedef size_t (*bi_curl_write_callback)(char *data, size_t size, size_t count, void *context);

CURLcode bi_curl_set_string(CURL *handle, CURLoption option, const char *value);
CURLcode bi_curl_set_long(CURL *handle, CURLoption option, long value);
CURLcode bi_curl_set_pointer(CURL *handle, CURLoption option, void *value);
/// A copy of `length` bytes (CURLOPT_CAINFO_BLOB, CURLOPT_SSLCERT_BLOB, CURLOPT_SSLKEY_BLOB).
CURLcode bi_curl_set_blob(CURL *handle, CURLoption option, const void *data, size_t length);
CURLcode bi_curl_set_write_callback(CURL *handle, bi_curl_write_callback callback, void *context);
/// Sockets are opened with SOCK_CLOEXEC.
CURLcode bi_curl_set_cloexec_sockets(CURL *handle);
long bi_curl_response_code(CURL *handle);

#endif
