// libcurl for LoopsyClient, loaded on first use.
//
// Neither loopsyd nor loopsy links libcurl: linking it makes every process that merely starts
// (`loopsy --version`, `loopsy help`, a daemon with no peers) load libcurl-gnutls and its 30-odd
// libraries (Kerberos, LDAP, libssh2, OpenSSL's libcrypto, ...) and bind their symbols, about
// 5 ms and 7 MB of RSS here. The first ccurl_ call dlopens it instead. (loopsy-mcp still links
// it, through the MCP SDK's FoundationNetworking.) curl.h is included for its types and
// constants only.
//
// curl_easy_setopt and curl_easy_getinfo are variadic: one typed wrapper per argument kind.
#ifndef CCURL_H
#define CCURL_H
#include <curl/curl.h>

typedef size_t (*ccurl_write_callback)(char *ptr, size_t size, size_t nmemb, void *userdata);
typedef size_t (*ccurl_read_callback)(char *buffer, size_t size, size_t nitems, void *userdata);
typedef int (*ccurl_seek_callback)(void *userdata, curl_off_t offset, int origin);
typedef int (*ccurl_xferinfo_callback)(void *clientp, curl_off_t dltotal, curl_off_t dlnow,
                                       curl_off_t ultotal, curl_off_t ulnow);

/// Loads libcurl and runs curl_global_init, once per process (thread-safe). NULL when it is
/// usable, else why not (the same text on every call).
const char *ccurl_load_error(void);

/// NULL when libcurl could not be loaded (see ccurl_load_error) or has no memory.
CURL *ccurl_easy_init(void);
// The rest take what only a loaded libcurl hands out, or return an error code without it.
void ccurl_easy_cleanup(CURL *curl);
void ccurl_easy_reset(CURL *curl);
CURLcode ccurl_easy_perform(CURL *curl);
const char *ccurl_easy_strerror(CURLcode code);
/// NULL when libcurl is not loaded or has no memory; the list passed in is then left as it was.
struct curl_slist *ccurl_slist_append(struct curl_slist *list, const char *string);
void ccurl_slist_free_all(struct curl_slist *list);

/// Sets a string option to NULL (e.g. no CA bundle or CA path to load).
CURLcode ccurl_setopt_null(CURL *curl, CURLoption option);
CURLcode ccurl_setopt_long(CURL *curl, CURLoption option, long value);
CURLcode ccurl_setopt_string(CURL *curl, CURLoption option, const char *value);
CURLcode ccurl_setopt_pointer(CURL *curl, CURLoption option, void *value);
CURLcode ccurl_setopt_slist(CURL *curl, CURLoption option, struct curl_slist *value);
CURLcode ccurl_setopt_write_function(CURL *curl, ccurl_write_callback cb);
CURLcode ccurl_setopt_header_function(CURL *curl, ccurl_write_callback cb);
CURLcode ccurl_setopt_read_function(CURL *curl, ccurl_read_callback cb);
CURLcode ccurl_setopt_seek_function(CURL *curl, ccurl_seek_callback cb);
CURLcode ccurl_setopt_off(CURL *curl, CURLoption option, curl_off_t value);
CURLcode ccurl_setopt_xferinfo_function(CURL *curl, ccurl_xferinfo_callback cb);
CURLcode ccurl_getinfo_long(CURL *curl, CURLINFO info, long *value);
#endif
