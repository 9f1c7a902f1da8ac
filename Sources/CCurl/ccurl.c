// See ccurl.h: libcurl through dlopen, resolved once.
#include "ccurl.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>

// Debian's GnuTLS build of libcurl (package libcurl3-gnutls), the one libcurl4-gnutls-dev's
// headers describe.
#define CCURL_LIBRARY "libcurl-gnutls.so.4"

static struct {
    CURLcode (*global_init)(long flags);
    CURL *(*easy_init)(void);
    void (*easy_cleanup)(CURL *curl);
    void (*easy_reset)(CURL *curl);
    CURLcode (*easy_perform)(CURL *curl);
    const char *(*easy_strerror)(CURLcode code);
    CURLcode (*easy_setopt)(CURL *curl, CURLoption option, ...);
    CURLcode (*easy_getinfo)(CURL *curl, CURLINFO info, ...);
    struct curl_slist *(*slist_append)(struct curl_slist *list, const char *string);
    void (*slist_free_all)(struct curl_slist *list);
} api;

static pthread_once_t once = PTHREAD_ONCE_INIT;
static const char *load_error = "libcurl was not loaded";
static char load_error_text[512];

static void load(void) {
    // Lazy: libcurl-gnutls brings about 30 libraries, and binding all their functions up front
    // is 2.6M instructions (of 16.4M for the whole load and curl_global_init, callgrind) for
    // functions a client never calls. Libraries linked with -z now are bound at once anyway;
    // the ones libcurl needs are checked here by dlsym.
    void *library = dlopen(CCURL_LIBRARY, RTLD_LAZY | RTLD_LOCAL);
    if (library == NULL) {
        const char *why = dlerror();
        snprintf(load_error_text, sizeof load_error_text,
                 "cannot load %s (%s): install the libcurl3-gnutls package", CCURL_LIBRARY,
                 why != NULL ? why : "unknown error");
        load_error = load_error_text;
        return;
    }
    struct { void **slot; const char *name; } symbols[] = {
        {(void **)&api.global_init, "curl_global_init"},
        {(void **)&api.easy_init, "curl_easy_init"},
        {(void **)&api.easy_cleanup, "curl_easy_cleanup"},
        {(void **)&api.easy_reset, "curl_easy_reset"},
        {(void **)&api.easy_perform, "curl_easy_perform"},
        {(void **)&api.easy_strerror, "curl_easy_strerror"},
        {(void **)&api.easy_setopt, "curl_easy_setopt"},
        {(void **)&api.easy_getinfo, "curl_easy_getinfo"},
        {(void **)&api.slist_append, "curl_slist_append"},
        {(void **)&api.slist_free_all, "curl_slist_free_all"},
    };
    for (size_t i = 0; i < sizeof symbols / sizeof symbols[0]; i++) {
        *symbols[i].slot = dlsym(library, symbols[i].name);
        if (*symbols[i].slot == NULL) {
            snprintf(load_error_text, sizeof load_error_text, "%s has no %s: install libcurl3-gnutls 7.88 or later",
                     CCURL_LIBRARY, symbols[i].name);
            load_error = load_error_text;
            api.easy_init = NULL;
            return;
        }
    }
    if (api.global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        load_error = "curl_global_init failed";
        api.easy_init = NULL;
        return;
    }
    load_error = NULL;
}

const char *ccurl_load_error(void) {
    pthread_once(&once, load);
    return load_error;
}

// Only ccurl_easy_init and ccurl_slist_append can be the first call (every other takes a handle
// or list they returned): they load, the rest find libcurl loaded.

CURL *ccurl_easy_init(void) {
    return ccurl_load_error() == NULL ? api.easy_init() : NULL;
}

void ccurl_easy_cleanup(CURL *curl) {
    if (curl != NULL) api.easy_cleanup(curl);
}

void ccurl_easy_reset(CURL *curl) {
    if (curl != NULL) api.easy_reset(curl);
}

CURLcode ccurl_easy_perform(CURL *curl) {
    return curl != NULL ? api.easy_perform(curl) : CURLE_FAILED_INIT;
}

const char *ccurl_easy_strerror(CURLcode code) {
    return ccurl_load_error() == NULL ? api.easy_strerror(code) : load_error;
}

struct curl_slist *ccurl_slist_append(struct curl_slist *list, const char *string) {
    return ccurl_load_error() == NULL ? api.slist_append(list, string) : NULL;
}

void ccurl_slist_free_all(struct curl_slist *list) {
    if (list != NULL) api.slist_free_all(list);
}

#define CCURL_SETOPT(curl, option, value) \
    ((curl) != NULL ? api.easy_setopt((curl), (option), (value)) : CURLE_FAILED_INIT)

CURLcode ccurl_setopt_null(CURL *curl, CURLoption option) { return CCURL_SETOPT(curl, option, (char *)NULL); }
CURLcode ccurl_setopt_long(CURL *curl, CURLoption option, long value) { return CCURL_SETOPT(curl, option, value); }
CURLcode ccurl_setopt_string(CURL *curl, CURLoption option, const char *value) {
    return CCURL_SETOPT(curl, option, value);
}
CURLcode ccurl_setopt_pointer(CURL *curl, CURLoption option, void *value) { return CCURL_SETOPT(curl, option, value); }
CURLcode ccurl_setopt_slist(CURL *curl, CURLoption option, struct curl_slist *value) {
    return CCURL_SETOPT(curl, option, value);
}
CURLcode ccurl_setopt_write_function(CURL *curl, ccurl_write_callback cb) {
    return CCURL_SETOPT(curl, CURLOPT_WRITEFUNCTION, cb);
}
CURLcode ccurl_setopt_header_function(CURL *curl, ccurl_write_callback cb) {
    return CCURL_SETOPT(curl, CURLOPT_HEADERFUNCTION, cb);
}
CURLcode ccurl_setopt_read_function(CURL *curl, ccurl_read_callback cb) {
    return CCURL_SETOPT(curl, CURLOPT_READFUNCTION, cb);
}
CURLcode ccurl_setopt_seek_function(CURL *curl, ccurl_seek_callback cb) {
    return CCURL_SETOPT(curl, CURLOPT_SEEKFUNCTION, cb);
}
CURLcode ccurl_setopt_off(CURL *curl, CURLoption option, curl_off_t value) { return CCURL_SETOPT(curl, option, value); }
CURLcode ccurl_setopt_xferinfo_function(CURL *curl, ccurl_xferinfo_callback cb) {
    return CCURL_SETOPT(curl, CURLOPT_XFERINFOFUNCTION, cb);
}
CURLcode ccurl_getinfo_long(CURL *curl, CURLINFO info, long *value) {
    return curl != NULL ? api.easy_getinfo(curl, info, value) : CURLE_FAILED_INIT;
}
