/*
 * fuzz_proto_reply.c - the client's reply decoder: proto_parse_reply for
 * the op named by the first byte, or proto_parse_models (a reply, or a
 * models table written by hand) when that byte says so.
 */
#include "tests/fuzz/fuzz.h"

#include "agents/proto.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    unsigned sel = data[0] % 9; /* 0..6: an op; 7: models reply; 8: table */
    char *buf = fuzz_copy(data + 1, size - 1);
    proto_reply_t r;
    proto_error_t err;
    memset(&r, 0, sizeof r);
    if (sel <= PROTO_OP_CLOCK) {
        proto_parse_reply(buf, size - 1, (proto_op_t)sel, &r, &err);
    } else {
        proto_model_t *models = NULL;
        size_t n = 0;
        proto_parse_models(buf, size - 1, sel == 7 ? &r : NULL, &models, &n,
                           &err);
        free(models);
    }
    free(buf);
    return 0;
}
