// libcurl for LoopsyClient only. curl_easy_setopt and curl_easy_getinfo are variadic: one typed
// wrapper per argument kind.
#ifndef CCURL_SHIM_H
#define CCURL_SHIM_H
#include <curl/curl.h>

typedef size_t (*ccurl_write_callback)(char *ptr, size_t size, size_t nmemb, void *userdata);
typedef size_t (*ccurl_read_callback)(char *buffer, size_t size, size_t nitems, void *userdata);
typedef int (*ccurl_seek_callback)(void *userdata, curl_off_t offset, int origin);
typedef int (*ccurl_xferinfo_callback)(void *clientp, curl_off_t dltotal, curl_off_t dlnow,
                                       curl_off_t ultotal, curl_off_t ulnow);

/// Sets a string option to NULL (e.g. no CA bundle or CA path to load).
static inline CURLcode ccurl_setopt_null(CURL *curl, CURLoption option) {
    return curl_easy_setopt(curl, option, (char *)NULL);
}
static inline CURLcode ccurl_setopt_long(CURL *curl, CURLoption option, long value) {
    return curl_easy_setopt(curl, option, value);
}
static inline CURLcode ccurl_setopt_string(CURL *curl, CURLoption option, const char *value) {
    return curl_easy_setopt(curl, option, value);
}
static inline CURLcode ccurl_setopt_pointer(CURL *curl, CURLoption option, void *value) {
    return curl_easy_setopt(curl, option, value);
}
static inline CURLcode ccurl_setopt_slist(CURL *curl, CURLoption option, struct curl_slist *value) {
    return curl_easy_setopt(curl, option, value);
}
static inline CURLcode ccurl_setopt_write_function(CURL *curl, ccurl_write_callback cb) {
    return curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, cb);
}
static inline CURLcode ccurl_setopt_header_function(CURL *curl, ccurl_write_callback cb) {
    return curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, cb);
}
static inline CURLcode ccurl_setopt_read_function(CURL *curl, ccurl_read_callback cb) {
    return curl_easy_setopt(curl, CURLOPT_READFUNCTION, cb);
}
static inline CURLcode ccurl_setopt_seek_function(CURL *curl, ccurl_seek_callback cb) {
    return curl_easy_setopt(curl, CURLOPT_SEEKFUNCTION, cb);
}
static inline CURLcode ccurl_setopt_off(CURL *curl, CURLoption option, curl_off_t value) {
    return curl_easy_setopt(curl, option, value);
}
static inline CURLcode ccurl_setopt_xferinfo_function(CURL *curl, ccurl_xferinfo_callback cb) {
    return curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, cb);
}
static inline CURLcode ccurl_getinfo_long(CURL *curl, CURLINFO info, long *value) {
    return curl_easy_getinfo(curl, info, value);
}
#endif
