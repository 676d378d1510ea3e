// TCP socket options Node does not expose. TCP_QUICKACK: an upstream vAccel agent (Rust ttrpc)
// writes a reply's 10-byte header and its body in two send()s with Nagle on, so the body waits
// until our ACK of the header arrives; Linux delays that ACK (up to 40 ms) once a connection looks
// interactive. Quick-ack mode acks at once, but it is not sticky (the kernel leaves it again), so
// the caller re-arms it after each read. Setting it also sends an ACK that is already pending.
#define _GNU_SOURCE
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include "common.h"

// tcpQuickAck(fd, arm = true): arms quick-ack mode (unless arm is false), then returns whether the
// socket is in it (getsockopt(TCP_QUICKACK): not in delayed-ACK "pingpong" mode).
napi_value js_tcp_quick_ack(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  int32_t fd;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1 || !arg_int(env, argv[0], &fd)) return throw_type(env, "tcpQuickAck(fd, arm?)");
  bool arm = true;
  if (argc >= 2) {
    napi_valuetype type;
    CHECK(napi_typeof(env, argv[1], &type));
    if (type == napi_boolean) CHECK(napi_get_value_bool(env, argv[1], &arm));
    else if (type != napi_undefined) return throw_type(env, "tcpQuickAck(fd, arm?)");
  }
  int on = 1;
  if (arm && setsockopt(fd, IPPROTO_TCP, TCP_QUICKACK, &on, sizeof on) < 0)
    return throw_errno(env, "setsockopt", errno);
  int state = 0;
  socklen_t length = sizeof state;
  if (getsockopt(fd, IPPROTO_TCP, TCP_QUICKACK, &state, &length) < 0)
    return throw_errno(env, "getsockopt", errno);
  napi_value out;
  napi_get_boolean(env, state != 0, &out);
  return out;
}
