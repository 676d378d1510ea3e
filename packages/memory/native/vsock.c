// AF_VSOCK, which Node lacks: a guest in a microVM (Firecracker, Cloud Hypervisor, Kata, QEMU)
// reaches its host only through it. These calls make the sockets; Node's own stream machinery
// (libuv pipe handles) does the I/O once a descriptor is adopted (see adopt(), src/vsock.ts).
// Nothing here blocks: connect starts and returns, the caller waits for writability with a
// Watcher and collects the outcome with connectResult().
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <linux/vm_sockets.h>

#include "common.h"

// A CID or port argument: an integer 0..2^32-1 (VMADDR_CID_ANY and VMADDR_PORT_ANY are 2^32-1).
static int arg_u32(napi_env env, napi_value value, uint32_t *out) {
  int64_t n;
  if (napi_get_value_int64(env, value, &n) != napi_ok || n < 0 || n > UINT32_MAX) return 0;
  double d;
  napi_get_value_double(env, value, &d);
  if (d != (double)n) return 0; // 1.5 is not a port
  *out = (uint32_t)n;
  return 1;
}

// vsockConnect(cid, port, timeoutMs) -> fd of a non-blocking socket whose connect has started
// (or, rarely, finished). The kernel gives up after timeoutMs (its default is 2 s, shorter than
// callers may want); an immediate failure (ENODEV: no route to that CID) throws here.
static napi_value js_vsock_connect(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  uint32_t cid, port;
  int32_t timeout_ms = 5000;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 2 || !arg_u32(env, argv[0], &cid) || !arg_u32(env, argv[1], &port) ||
      (argc > 2 && (!arg_int(env, argv[2], &timeout_ms) || timeout_ms <= 0)))
    return throw_type(env, "vsockConnect(cid, port, timeoutMs?): integers, cid and port 0..2^32-1, timeoutMs > 0");
  int fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return throw_errno(env, "socket(AF_VSOCK)", errno);
  struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};
  // Best effort: an old kernel without the option keeps its 2 s.
  setsockopt(fd, AF_VSOCK, SO_VM_SOCKETS_CONNECT_TIMEOUT, &tv, sizeof tv);
  struct sockaddr_vm address = {.svm_family = AF_VSOCK, .svm_cid = cid, .svm_port = port};
  if (connect(fd, (struct sockaddr *)&address, sizeof address) < 0 && errno != EINPROGRESS)
    return close_and_throw(env, fd, "connect");
  return make_int(env, fd);
}

// connectResult(fd): once a connecting socket is writable, throws the error its connect ended
// with (SO_ERROR: ECONNRESET, ETIMEDOUT …), or returns nothing when it is connected.
static napi_value js_connect_result(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  int32_t fd;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1 || !arg_int(env, argv[0], &fd)) return throw_type(env, "connectResult(fd)");
  int err = 0;
  socklen_t length = sizeof err;
  if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &length) < 0) return throw_errno(env, "getsockopt(SO_ERROR)", errno);
  if (err != 0) return throw_errno(env, "connect", err);
  // Writable without an error can still mean "not connected" (a reset raced the check).
  struct sockaddr_vm peer;
  length = sizeof peer;
  if (getpeername(fd, (struct sockaddr *)&peer, &length) < 0) return throw_errno(env, "connect", errno == ENOTCONN ? ECONNRESET : errno);
  return NULL;
}

// vsockListen(cid, port, backlog = 128) -> fd of a non-blocking listening socket; cid is the local
// CID or VMADDR_CID_ANY (2^32-1), port VMADDR_PORT_ANY (2^32-1) lets the kernel choose.
static napi_value js_vsock_listen(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  uint32_t cid, port;
  int32_t backlog = 128;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 2 || !arg_u32(env, argv[0], &cid) || !arg_u32(env, argv[1], &port) ||
      (argc > 2 && !arg_int(env, argv[2], &backlog)))
    return throw_type(env, "vsockListen(cid, port, backlog?): cid and port integers 0..2^32-1");
  int fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return throw_errno(env, "socket(AF_VSOCK)", errno);
  struct sockaddr_vm address = {.svm_family = AF_VSOCK, .svm_cid = cid, .svm_port = port};
  if (bind(fd, (struct sockaddr *)&address, sizeof address) < 0) return close_and_throw(env, fd, "bind");
  if (listen(fd, backlog) < 0) return close_and_throw(env, fd, "listen");
  return make_int(env, fd);
}

// vsockAddress(fd, peer = false) -> { cid, port } of a vsock socket's own end (or its peer's).
static napi_value js_vsock_address(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  int32_t fd;
  bool peer = false;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1 || !arg_int(env, argv[0], &fd) || (argc > 1 && napi_get_value_bool(env, argv[1], &peer) != napi_ok))
    return throw_type(env, "vsockAddress(fd, peer?)");
  struct sockaddr_vm address;
  socklen_t length = sizeof address;
  int rc = peer ? getpeername(fd, (struct sockaddr *)&address, &length)
                : getsockname(fd, (struct sockaddr *)&address, &length);
  if (rc < 0) return throw_errno(env, peer ? "getpeername" : "getsockname", errno);
  if (address.svm_family != AF_VSOCK) return throw_errno(env, "getsockname (not AF_VSOCK)", EAFNOSUPPORT);
  napi_value result;
  CHECK(napi_create_object(env, &result));
  napi_set_named_property(env, result, "cid", make_int(env, address.svm_cid));
  napi_set_named_property(env, result, "port", make_int(env, address.svm_port));
  return result;
}

// vsockLocalCid() -> this machine's CID (a guest's own; 2 on a host with vhost-vsock).
static napi_value js_vsock_local_cid(napi_env env, napi_callback_info info) {
  (void)info;
  int fd = open("/dev/vsock", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return throw_errno(env, "open(/dev/vsock)", errno);
  unsigned int cid = 0;
  if (ioctl(fd, IOCTL_VM_SOCKETS_GET_LOCAL_CID, &cid) < 0) return close_and_throw(env, fd, "ioctl(IOCTL_VM_SOCKETS_GET_LOCAL_CID)");
  close(fd);
  return make_int(env, cid);
}

// placeholder(listening) -> fd of a fresh AF_UNIX stream socket for Node to wrap before adopt()
// swaps the real socket in: Node wraps only descriptors libuv recognises, and AF_VSOCK is not one
// of them. A listening one is autobound (an abstract name the kernel picks) because Node calls
// listen() on it; it exists for one synchronous tick, until adopt() replaces it.
static napi_value js_placeholder(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  bool listening = false;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc > 0 && napi_get_value_bool(env, argv[0], &listening) != napi_ok) return throw_type(env, "placeholder(listening?)");
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return throw_errno(env, "socket(AF_UNIX)", errno);
  if (listening) {
    struct sockaddr_un address = {.sun_family = AF_UNIX};
    if (bind(fd, (struct sockaddr *)&address, sizeof(sa_family_t)) < 0) return close_and_throw(env, fd, "bind");
    if (listen(fd, 1) < 0) return close_and_throw(env, fd, "listen");
  }
  return make_int(env, fd);
}

// adopt(fd, placeholder): puts socket fd (made non-blocking) in the placeholder's slot (dup3,
// close-on-exec) and closes fd. The placeholder's own socket goes away with it.
static napi_value js_adopt(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  int32_t fd, slot;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 2 || !arg_int(env, argv[0], &fd) || !arg_int(env, argv[1], &slot) || fd < 0 || slot < 0 || fd == slot)
    return throw_type(env, "adopt(fd, placeholder): two different descriptors");
  // libuv expects a non-blocking descriptor (it set the placeholder's, not this one's).
  int flags = fcntl(fd, F_GETFL);
  if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) return throw_errno(env, "fcntl", errno);
  int rc;
  do rc = dup3(fd, slot, O_CLOEXEC);
  while (rc < 0 && (errno == EINTR || errno == EBUSY));
  if (rc < 0) return throw_errno(env, "dup3", errno);
  close(fd);
  return NULL;
}

void define_vsock(napi_env env, napi_value exports) {
  napi_property_descriptor functions[] = {
      {"vsockConnect", NULL, js_vsock_connect, NULL, NULL, NULL, napi_enumerable, NULL},
      {"connectResult", NULL, js_connect_result, NULL, NULL, NULL, napi_enumerable, NULL},
      {"vsockListen", NULL, js_vsock_listen, NULL, NULL, NULL, napi_enumerable, NULL},
      {"vsockAddress", NULL, js_vsock_address, NULL, NULL, NULL, napi_enumerable, NULL},
      {"vsockLocalCid", NULL, js_vsock_local_cid, NULL, NULL, NULL, napi_enumerable, NULL},
      {"placeholder", NULL, js_placeholder, NULL, NULL, NULL, napi_enumerable, NULL},
      {"adopt", NULL, js_adopt, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  napi_define_properties(env, exports, sizeof functions / sizeof functions[0], functions);
}
