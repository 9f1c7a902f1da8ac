/* What libmicrohttpd itself costs on this machine, for bench/http.sh: a server started with
 * loopsyd's flags and options (epoll, internal thread pool, suspend/resume allowed, the same
 * per-connection memory) that answers every request as loopsyd answers GET /context/{key}: it
 * reads the Authorization header, makes a response, adds loopsyd's headers and queues it on
 * MHD's second call. No routing, no authentication, no store, no audit: the gap between this
 * and loopsyd is what loopsyd's own code costs per request.
 *
 * Usage: mhd-floor PORT THREADS CONNECTION_MEMORY_BYTES BODY_FILE   (runs until killed)
 */
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static char body[4096];
static size_t body_length;

static enum MHD_Result answer(void *cls, struct MHD_Connection *connection, const char *url, const char *method,
                              const char *version, const char *upload_data, size_t *upload_size, void **state) {
    static int seen;
    (void)cls; (void)url; (void)method; (void)version; (void)upload_data; (void)upload_size;
    if (*state == NULL) { /* first call: the head only; answering now would close the connection */
        *state = &seen;
        return MHD_YES;
    }
    if (MHD_lookup_connection_value(connection, MHD_HEADER_KIND, "Authorization") == NULL) return MHD_NO;
    struct MHD_Response *response = MHD_create_response_from_buffer(body_length, body, MHD_RESPMEM_PERSISTENT);
    if (response == NULL) return MHD_NO;
    MHD_add_response_header(response, "Content-Type", "application/json");
    MHD_add_response_header(response, "X-Request-Id", "d8196ffc00000004");
    MHD_add_response_header(response, "Cache-Control", "no-store");
    MHD_add_response_header(response, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(response, "Content-Security-Policy",
                            "default-src 'none'; frame-ancestors 'none'; sandbox");
    MHD_add_response_header(response, "X-Frame-Options", "DENY");
    enum MHD_Result queued = MHD_queue_response(connection, 200, response);
    MHD_destroy_response(response);
    return queued;
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: %s PORT THREADS CONNECTION_MEMORY_BYTES BODY_FILE\n", argv[0]);
        return 2;
    }
    FILE *file = fopen(argv[4], "rb");
    if (file == NULL) { perror(argv[4]); return 1; }
    body_length = fread(body, 1, sizeof body, file);
    fclose(file);
    struct MHD_Daemon *daemon = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG,
        (uint16_t)atoi(argv[1]), NULL, NULL, answer, NULL,
        MHD_OPTION_THREAD_POOL_SIZE, (unsigned int)atoi(argv[2]),
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)atol(argv[3]),
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)300,
        MHD_OPTION_END);
    if (daemon == NULL) { fprintf(stderr, "MHD_start_daemon failed\n"); return 1; }
    for (;;) pause();
}
