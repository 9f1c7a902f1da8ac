// avahi-client for mDNS publishing and browsing (LoopsyPeers' Discovery only), loaded on first use.
//
// Nothing links avahi: libavahi-client brings libdbus, libsystemd and its compressors and
// libgcrypt (10 libraries, several bound at load), about 2.5 ms of every loopsyd start before
// it could listen, and a daemon with discovery off never needs them. cavahi_load_error()
// dlopens it (from Discovery.start, after the daemon listens); every cavahi_ function is its
// avahi_ namesake. The avahi headers are included for their types and constants only.
#ifndef CAVAHI_H
#define CAVAHI_H
#include <avahi-client/client.h>
#include <avahi-client/publish.h>
#include <avahi-client/lookup.h>
#include <avahi-common/thread-watch.h>
#include <avahi-common/alternative.h>
#include <avahi-common/malloc.h>
#include <avahi-common/error.h>
#include <avahi-common/strlst.h>
#include <avahi-common/address.h>

/// Loads libavahi-client once per process (thread-safe). NULL when it is usable, else why not
/// (the same text on every call). No other cavahi_ function may be called before it says NULL.
const char *cavahi_load_error(void);

/// avahi_strerror, which works before (and without) the library: "unknown error" then.
const char *cavahi_strerror(int error);
AvahiThreadedPoll *cavahi_threaded_poll_new(void);
void cavahi_threaded_poll_free(AvahiThreadedPoll *p);
const AvahiPoll *cavahi_threaded_poll_get(AvahiThreadedPoll *p);
int cavahi_threaded_poll_start(AvahiThreadedPoll *p);
int cavahi_threaded_poll_stop(AvahiThreadedPoll *p);
void cavahi_threaded_poll_lock(AvahiThreadedPoll *p);
void cavahi_threaded_poll_unlock(AvahiThreadedPoll *p);
void cavahi_free(void *p);
char *cavahi_alternative_service_name(const char *s);
AvahiStringList *cavahi_string_list_add(AvahiStringList *l, const char *text);
void cavahi_string_list_free(AvahiStringList *l);
AvahiStringList *cavahi_string_list_get_next(AvahiStringList *l);
size_t cavahi_string_list_get_size(AvahiStringList *l);
uint8_t *cavahi_string_list_get_text(AvahiStringList *l);
char *cavahi_address_snprint(char *s, size_t length, const AvahiAddress *a);
AvahiClient *cavahi_client_new(const AvahiPoll *poll, AvahiClientFlags flags, AvahiClientCallback callback, void *userdata, int *error);
void cavahi_client_free(AvahiClient *client);
int cavahi_client_errno(AvahiClient *client);
AvahiEntryGroup *cavahi_entry_group_new(AvahiClient *client, AvahiEntryGroupCallback callback, void *userdata);
int cavahi_entry_group_reset(AvahiEntryGroup *group);
int cavahi_entry_group_is_empty(AvahiEntryGroup *group);
int cavahi_entry_group_commit(AvahiEntryGroup *group);
AvahiClient *cavahi_entry_group_get_client(AvahiEntryGroup *group);
int cavahi_entry_group_add_service_strlst(AvahiEntryGroup *group, AvahiIfIndex interface, AvahiProtocol protocol, AvahiPublishFlags flags, const char *name, const char *type, const char *domain, const char *host, uint16_t port, AvahiStringList *txt);
AvahiServiceBrowser *cavahi_service_browser_new(AvahiClient *client, AvahiIfIndex interface, AvahiProtocol protocol, const char *type, const char *domain, AvahiLookupFlags flags, AvahiServiceBrowserCallback callback, void *userdata);
AvahiServiceResolver *cavahi_service_resolver_new(AvahiClient *client, AvahiIfIndex interface, AvahiProtocol protocol, const char *name, const char *type, const char *domain, AvahiProtocol aprotocol, AvahiLookupFlags flags, AvahiServiceResolverCallback callback, void *userdata);
int cavahi_service_resolver_free(AvahiServiceResolver *resolver);
#endif
