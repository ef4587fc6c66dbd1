/*
 * fuzz_proto_request.c - the request decoder (proto_parse_request), the
 * first thing bursard does with a frame from the network.
 */
#include "tests/fuzz/fuzz.h"

#include "agents/proto.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *buf = fuzz_copy(data, size);
    proto_request_t req;
    proto_error_t err;
    memset(&req, 0, sizeof req);
    proto_parse_request(buf, size, &req, &err);
    free(buf);
    return 0;
}
