// Wrappers for the parts of libmicrohttpd that Swift cannot call directly (C variadics and
// unions). Each is prefixed with the module name; only LoopsyHTTP imports this module.
#ifndef CMICROHTTPD_SHIM_H
#define CMICROHTTPD_SHIM_H
#include <stdint.h>
#include <stddef.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>
#include <sys/socket.h>
#include <poll.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <unistd.h>
#include <microhttpd.h>

/// Where libmicrohttpd's own messages go (MHD_OPTION_EXTERNAL_LOGGER): `sink(cls, line)` with the
/// message formatted, cut at 1 KiB and without its line break.
typedef void (*cmhd_log_sink)(void *cls, const char *line);
struct cmhd_logger {
    cmhd_log_sink sink;
    void *cls;
};

static inline void cmhd_log_formatted(void *cls, const char *format, va_list arguments) {
    const struct cmhd_logger *logger = (const struct cmhd_logger *)cls;
    char line[1024];
    if (vsnprintf(line, sizeof line, format, arguments) < 0) return;
    size_t end = strnlen(line, sizeof line);
    while (end > 0 && (line[end - 1] == '\n' || line[end - 1] == '\r')) line[--end] = '\0';
    logger->sink(logger->cls, line);
}

/// `logger` must live until MHD_stop_daemon has returned.
static inline struct MHD_OptionItem cmhd_option_logger(const struct cmhd_logger *logger) {
    struct MHD_OptionItem item = { MHD_OPTION_EXTERNAL_LOGGER, (intptr_t)&cmhd_log_formatted, (void *)logger };
    return item;
}

/// MHD_start_daemon is variadic: every option goes through one MHD_OPTION_ARRAY.
static inline struct MHD_Daemon *cmhd_start_daemon(unsigned int flags, uint16_t port,
                                                   MHD_AcceptPolicyCallback accept_policy, void *accept_cls,
                                                   MHD_AccessHandlerCallback handler, void *handler_cls,
                                                   struct MHD_OptionItem *options) {
    return MHD_start_daemon(flags, port, accept_policy, accept_cls, handler, handler_cls,
                            MHD_OPTION_ARRAY, options, MHD_OPTION_END);
}

/// The enum's cases import under unstable Swift names.
static inline int cmhd_connection_started(enum MHD_ConnectionNotificationCode code) {
    return code == MHD_CONNECTION_NOTIFY_STARTED;
}

/// True when the client of a (suspended) connection has hung up: MHD does not watch the sockets
/// of suspended connections, so work done for one asks here whether anyone still waits.
static inline int cmhd_client_hung_up(struct MHD_Connection *connection) {
    const union MHD_ConnectionInfo *info = MHD_get_connection_info(connection, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!info) return 1;
#ifndef POLLRDHUP
#define POLLRDHUP 0x2000
#endif
    struct pollfd descriptor = { info->connect_fd, POLLRDHUP, 0 };
    return poll(&descriptor, 1, 0) > 0 && (descriptor.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0;
}

/// The socket of a connection (valid until MHD_CONNECTION_NOTIFY_CLOSED returns).
static inline int cmhd_connection_fd(struct MHD_Connection *connection) {
    const union MHD_ConnectionInfo *info = MHD_get_connection_info(connection, MHD_CONNECTION_INFO_CONNECTION_FD);
    return info ? (int)info->connect_fd : -1;
}

/// What the connection notification (MHD_CONNECTION_NOTIFY_STARTED) put in the connection's
/// socket context (NULL before it). Never after MHD_CONNECTION_NOTIFY_CLOSED: MHD frees the
/// connection then.
static inline void *cmhd_socket_context(struct MHD_Connection *connection) {
    const union MHD_ConnectionInfo *info = MHD_get_connection_info(connection, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return info ? info->socket_context : NULL;
}

/// The listening socket, so the daemon can report the port it bound when asked for port 0.
static inline int cmhd_listen_fd(struct MHD_Daemon *daemon) {
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(daemon, MHD_DAEMON_INFO_LISTEN_FD);
    return info ? (int)info->listen_fd : -1;
}

/// The peer address of a connection (valid for the connection's lifetime).
static inline const struct sockaddr *cmhd_client_address(struct MHD_Connection *connection) {
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(connection, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    return info ? info->client_addr : NULL;
}

/// Option values are intptr_t in MHD_OptionItem; these build items without casts in Swift.
static inline struct MHD_OptionItem cmhd_option_int(enum MHD_OPTION option, intptr_t value) {
    struct MHD_OptionItem item = { option, value, NULL };
    return item;
}
static inline struct MHD_OptionItem cmhd_option_ptr(enum MHD_OPTION option, intptr_t value, void *ptr) {
    struct MHD_OptionItem item = { option, value, ptr };
    return item;
}
static inline struct MHD_OptionItem cmhd_option_completed(MHD_RequestCompletedCallback cb, void *cls) {
    struct MHD_OptionItem item = { MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)cb, cls };
    return item;
}
static inline struct MHD_OptionItem cmhd_option_notify_connection(MHD_NotifyConnectionCallback cb, void *cls) {
    struct MHD_OptionItem item = { MHD_OPTION_NOTIFY_CONNECTION, (intptr_t)cb, cls };
    return item;
}
typedef size_t (*cmhd_unescape_callback)(void *cls, struct MHD_Connection *connection, char *text);
static inline struct MHD_OptionItem cmhd_option_unescape(cmhd_unescape_callback cb, void *cls) {
    struct MHD_OptionItem item = { MHD_OPTION_UNESCAPE_CALLBACK, (intptr_t)cb, cls };
    return item;
}
static inline struct MHD_OptionItem cmhd_option_end(void) {
    struct MHD_OptionItem item = { MHD_OPTION_END, 0, NULL };
    return item;
}

/// Copy mode for buffer responses (the enum case imports under an unstable Swift name).
static inline struct MHD_Response *cmhd_response_copying(size_t size, const void *buffer) {
    return MHD_create_response_from_buffer(size, (void *)buffer, MHD_RESPMEM_MUST_COPY);
}

/// A file region as a response body, read with pread as MHD sends it. MHD's own file responses
/// (MHD_create_response_from_fd) send with sendfile, and libmicrohttpd 0.9.75 does not notice
/// a file that became shorter than the region: sendfile returns 0, MHD waits for the socket to
/// become writable again, and the client waits until the connection's idle timeout. Here a
/// read that finds the end early fails the response, so MHD closes the connection at once and
/// the client sees a short body. MHD closes fd when it destroys the response.
struct cmhd_file_region {
    int fd;
    uint64_t offset;
};

static ssize_t cmhd_file_region_read(void *cls, uint64_t position, char *buffer, size_t max) {
    const struct cmhd_file_region *region = cls;
    if (position > (uint64_t)INT64_MAX - region->offset) return MHD_CONTENT_READER_END_WITH_ERROR;
    if (max > (size_t)SSIZE_MAX) max = (size_t)SSIZE_MAX;
    for (;;) {
        ssize_t count = pread(region->fd, buffer, max, (off_t)(region->offset + position));
        if (count > 0) return count;
        if (count < 0 && errno == EINTR) continue;
        // 0: the file ends before the length announced; < 0: it cannot be read.
        return MHD_CONTENT_READER_END_WITH_ERROR;
    }
}

static void cmhd_file_region_free(void *cls) {
    struct cmhd_file_region *region = cls;
    close(region->fd);
    free(region);
}

/// NULL (and fd closed) when there is no memory for it.
static inline struct MHD_Response *cmhd_response_from_file(uint64_t length, int fd, uint64_t offset,
                                                          size_t block_size) {
    struct cmhd_file_region *region = malloc(sizeof *region);
    if (region == NULL) {
        close(fd);
        return NULL;
    }
    region->fd = fd;
    region->offset = offset;
    struct MHD_Response *response = MHD_create_response_from_callback(length, block_size, cmhd_file_region_read,
                                                                      region, cmhd_file_region_free);
    if (response == NULL) cmhd_file_region_free(region);
    return response;
}

#endif
