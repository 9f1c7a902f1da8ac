// See cavahi.h: avahi-client through dlopen, resolved once.
#include "cavahi.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>

// Debian's libavahi-client3 (libavahi-client-dev's headers describe it); it depends on
// libavahi-common3, where dlsym on its handle finds the rest.
#define CAVAHI_LIBRARY "libavahi-client.so.3"

static struct {
    __typeof__(avahi_strerror) *strerror;
    __typeof__(avahi_threaded_poll_new) *threaded_poll_new;
    __typeof__(avahi_threaded_poll_free) *threaded_poll_free;
    __typeof__(avahi_threaded_poll_get) *threaded_poll_get;
    __typeof__(avahi_threaded_poll_start) *threaded_poll_start;
    __typeof__(avahi_threaded_poll_stop) *threaded_poll_stop;
    __typeof__(avahi_threaded_poll_lock) *threaded_poll_lock;
    __typeof__(avahi_threaded_poll_unlock) *threaded_poll_unlock;
    __typeof__(avahi_free) *free;
    __typeof__(avahi_alternative_service_name) *alternative_service_name;
    __typeof__(avahi_string_list_add) *string_list_add;
    __typeof__(avahi_string_list_free) *string_list_free;
    __typeof__(avahi_string_list_get_next) *string_list_get_next;
    __typeof__(avahi_string_list_get_size) *string_list_get_size;
    __typeof__(avahi_string_list_get_text) *string_list_get_text;
    __typeof__(avahi_address_snprint) *address_snprint;
    __typeof__(avahi_client_new) *client_new;
    __typeof__(avahi_client_free) *client_free;
    __typeof__(avahi_client_errno) *client_errno;
    __typeof__(avahi_entry_group_new) *entry_group_new;
    __typeof__(avahi_entry_group_reset) *entry_group_reset;
    __typeof__(avahi_entry_group_is_empty) *entry_group_is_empty;
    __typeof__(avahi_entry_group_commit) *entry_group_commit;
    __typeof__(avahi_entry_group_get_client) *entry_group_get_client;
    __typeof__(avahi_entry_group_add_service_strlst) *entry_group_add_service_strlst;
    __typeof__(avahi_service_browser_new) *service_browser_new;
    __typeof__(avahi_service_resolver_new) *service_resolver_new;
    __typeof__(avahi_service_resolver_free) *service_resolver_free;
} api;

static pthread_once_t once = PTHREAD_ONCE_INIT;
static const char *load_error = "libavahi-client was not loaded";
static char load_error_text[512];

static void load(void) {
    void *library = dlopen(CAVAHI_LIBRARY, RTLD_NOW | RTLD_LOCAL);
    if (library == NULL) {
        const char *why = dlerror();
        snprintf(load_error_text, sizeof load_error_text,
                 "cannot load %s (%s): install the libavahi-client3 package", CAVAHI_LIBRARY,
                 why != NULL ? why : "unknown error");
        load_error = load_error_text;
        return;
    }
    struct { void **slot; const char *name; } symbols[] = {
        {(void **)&api.strerror, "avahi_strerror"},
        {(void **)&api.threaded_poll_new, "avahi_threaded_poll_new"},
        {(void **)&api.threaded_poll_free, "avahi_threaded_poll_free"},
        {(void **)&api.threaded_poll_get, "avahi_threaded_poll_get"},
        {(void **)&api.threaded_poll_start, "avahi_threaded_poll_start"},
        {(void **)&api.threaded_poll_stop, "avahi_threaded_poll_stop"},
        {(void **)&api.threaded_poll_lock, "avahi_threaded_poll_lock"},
        {(void **)&api.threaded_poll_unlock, "avahi_threaded_poll_unlock"},
        {(void **)&api.free, "avahi_free"},
        {(void **)&api.alternative_service_name, "avahi_alternative_service_name"},
        {(void **)&api.string_list_add, "avahi_string_list_add"},
        {(void **)&api.string_list_free, "avahi_string_list_free"},
        {(void **)&api.string_list_get_next, "avahi_string_list_get_next"},
        {(void **)&api.string_list_get_size, "avahi_string_list_get_size"},
        {(void **)&api.string_list_get_text, "avahi_string_list_get_text"},
        {(void **)&api.address_snprint, "avahi_address_snprint"},
        {(void **)&api.client_new, "avahi_client_new"},
        {(void **)&api.client_free, "avahi_client_free"},
        {(void **)&api.client_errno, "avahi_client_errno"},
        {(void **)&api.entry_group_new, "avahi_entry_group_new"},
        {(void **)&api.entry_group_reset, "avahi_entry_group_reset"},
        {(void **)&api.entry_group_is_empty, "avahi_entry_group_is_empty"},
        {(void **)&api.entry_group_commit, "avahi_entry_group_commit"},
        {(void **)&api.entry_group_get_client, "avahi_entry_group_get_client"},
        {(void **)&api.entry_group_add_service_strlst, "avahi_entry_group_add_service_strlst"},
        {(void **)&api.service_browser_new, "avahi_service_browser_new"},
        {(void **)&api.service_resolver_new, "avahi_service_resolver_new"},
        {(void **)&api.service_resolver_free, "avahi_service_resolver_free"},
    };
    for (size_t i = 0; i < sizeof symbols / sizeof symbols[0]; i++) {
        *symbols[i].slot = dlsym(library, symbols[i].name);
        if (*symbols[i].slot == NULL) {
            snprintf(load_error_text, sizeof load_error_text, "%s has no %s: install libavahi-client3 0.8 or later",
                     CAVAHI_LIBRARY, symbols[i].name);
            load_error = load_error_text;
            api.strerror = NULL;
            return;
        }
    }
    load_error = NULL;
}

const char *cavahi_load_error(void) {
    pthread_once(&once, load);
    return load_error;
}

const char *cavahi_strerror(int error) {
    return cavahi_load_error() == NULL ? api.strerror(error) : "unknown error";
}

// The rest are called only once cavahi_load_error() said NULL.

AvahiThreadedPoll *cavahi_threaded_poll_new(void) {
    return api.threaded_poll_new();
}

void cavahi_threaded_poll_free(AvahiThreadedPoll *p) {
    api.threaded_poll_free(p);
}

const AvahiPoll *cavahi_threaded_poll_get(AvahiThreadedPoll *p) {
    return api.threaded_poll_get(p);
}

int cavahi_threaded_poll_start(AvahiThreadedPoll *p) {
    return api.threaded_poll_start(p);
}

int cavahi_threaded_poll_stop(AvahiThreadedPoll *p) {
    return api.threaded_poll_stop(p);
}

void cavahi_threaded_poll_lock(AvahiThreadedPoll *p) {
    api.threaded_poll_lock(p);
}

void cavahi_threaded_poll_unlock(AvahiThreadedPoll *p) {
    api.threaded_poll_unlock(p);
}

void cavahi_free(void *p) {
    api.free(p);
}

char *cavahi_alternative_service_name(const char *s) {
    return api.alternative_service_name(s);
}

AvahiStringList *cavahi_string_list_add(AvahiStringList *l, const char *text) {
    return api.string_list_add(l, text);
}

void cavahi_string_list_free(AvahiStringList *l) {
    api.string_list_free(l);
}

AvahiStringList *cavahi_string_list_get_next(AvahiStringList *l) {
    return api.string_list_get_next(l);
}

size_t cavahi_string_list_get_size(AvahiStringList *l) {
    return api.string_list_get_size(l);
}

uint8_t *cavahi_string_list_get_text(AvahiStringList *l) {
    return api.string_list_get_text(l);
}

char *cavahi_address_snprint(char *s, size_t length, const AvahiAddress *a) {
    return api.address_snprint(s, length, a);
}

AvahiClient *cavahi_client_new(const AvahiPoll *poll, AvahiClientFlags flags, AvahiClientCallback callback, void *userdata, int *error) {
    return api.client_new(poll, flags, callback, userdata, error);
}

void cavahi_client_free(AvahiClient *client) {
    api.client_free(client);
}

int cavahi_client_errno(AvahiClient *client) {
    return api.client_errno(client);
}

AvahiEntryGroup *cavahi_entry_group_new(AvahiClient *client, AvahiEntryGroupCallback callback, void *userdata) {
    return api.entry_group_new(client, callback, userdata);
}

int cavahi_entry_group_reset(AvahiEntryGroup *group) {
    return api.entry_group_reset(group);
}

int cavahi_entry_group_is_empty(AvahiEntryGroup *group) {
    return api.entry_group_is_empty(group);
}

int cavahi_entry_group_commit(AvahiEntryGroup *group) {
    return api.entry_group_commit(group);
}

AvahiClient *cavahi_entry_group_get_client(AvahiEntryGroup *group) {
    return api.entry_group_get_client(group);
}

int cavahi_entry_group_add_service_strlst(AvahiEntryGroup *group, AvahiIfIndex interface, AvahiProtocol protocol, AvahiPublishFlags flags, const char *name, const char *type, const char *domain, const char *host, uint16_t port, AvahiStringList *txt) {
    return api.entry_group_add_service_strlst(group, interface, protocol, flags, name, type, domain, host, port, txt);
}

AvahiServiceBrowser *cavahi_service_browser_new(AvahiClient *client, AvahiIfIndex interface, AvahiProtocol protocol, const char *type, const char *domain, AvahiLookupFlags flags, AvahiServiceBrowserCallback callback, void *userdata) {
    return api.service_browser_new(client, interface, protocol, type, domain, flags, callback, userdata);
}

AvahiServiceResolver *cavahi_service_resolver_new(AvahiClient *client, AvahiIfIndex interface, AvahiProtocol protocol, const char *name, const char *type, const char *domain, AvahiProtocol aprotocol, AvahiLookupFlags flags, AvahiServiceResolverCallback callback, void *userdata) {
    return api.service_resolver_new(client, interface, protocol, name, type, domain, aprotocol, flags, callback, userdata);
}

int cavahi_service_resolver_free(AvahiServiceResolver *resolver) {
    return api.service_resolver_free(resolver);
}
