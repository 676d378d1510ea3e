// The few Linux syscalls that shared memory needs and Node lacks: memfds (sealed, so a peer cannot
// shrink them under us), mmap/munmap of descriptors as external ArrayBuffers, unix sockets that
// carry file descriptors (SCM_RIGHTS) and tell who is on the other end (SO_PEERCRED), eventfds and
// a libuv readiness watcher. Used by the agent and guests (shared-memory regions) and by the
// vhost-user backend (guest RAM); every protocol on top is TypeScript.
// Every call is non-blocking except sendmsg, which waits up to one second for buffer space.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "common.h"

// The most descriptors one message may carry (vhost-user sends at most 8, for a memory table).
#define MAX_FDS 16

// Reads the bytes of a Uint8Array/Buffer argument.
static int arg_bytes(napi_env env, napi_value value, uint8_t **data, size_t *length) {
  bool is_typed;
  if (napi_is_typedarray(env, value, &is_typed) != napi_ok || !is_typed) return 0;
  napi_typedarray_type type;
  napi_value buffer;
  size_t offset;
  void *raw;
  if (napi_get_typedarray_info(env, value, &type, length, &raw, &buffer, &offset) != napi_ok) return 0;
  if (type != napi_uint8_array) return 0;
  *data = raw;
  return 1;
}

static int fill_unix_address(napi_env env, napi_value value, struct sockaddr_un *address) {
  memset(address, 0, sizeof *address);
  address->sun_family = AF_UNIX;
  size_t length;
  if (napi_get_value_string_utf8(env, value, NULL, 0, &length) != napi_ok) return 0;
  if (length == 0 || length >= sizeof address->sun_path) return 0;
  napi_get_value_string_utf8(env, value, address->sun_path, sizeof address->sun_path, &length);
  return 1;
}

// listen(path, backlog) -> fd: a non-blocking listening unix stream socket.
static napi_value js_listen(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  struct sockaddr_un address;
  int32_t backlog = 16;
  if (argc < 1 || !fill_unix_address(env, argv[0], &address))
    return throw_type(env, "listen(path): path must be a string shorter than 108 bytes");
  if (argc > 1) arg_int(env, argv[1], &backlog);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return throw_errno(env, "socket", errno);
  if (bind(fd, (struct sockaddr *)&address, sizeof address) < 0) return close_and_throw(env, fd, "bind");
  if (listen(fd, backlog) < 0) return close_and_throw(env, fd, "listen");
  return make_int(env, fd);
}

// accept(fd) -> fd, or null when no connection is waiting.
static napi_value js_accept(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  int32_t fd;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1 || !arg_int(env, argv[0], &fd)) return throw_type(env, "accept(fd)");
  int client = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
  if (client < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ECONNABORTED) return make_null(env);
    return throw_errno(env, "accept4", errno);
  }
  return make_int(env, client);
}

// connect(path) -> fd: a non-blocking connected unix stream socket (the test front-ends use it).
static napi_value js_connect(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  struct sockaddr_un address;
  if (argc < 1 || !fill_unix_address(env, argv[0], &address))
    return throw_type(env, "connect(path): path must be a string shorter than 108 bytes");
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return throw_errno(env, "socket", errno);
  if (connect(fd, (struct sockaddr *)&address, sizeof address) < 0) return close_and_throw(env, fd, "connect");
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  return make_int(env, fd);
}

// recvmsg(fd, buffer) -> { bytes, fds } (bytes 0 = peer closed), or null when nothing is waiting.
static napi_value js_recvmsg(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  int32_t fd;
  uint8_t *data;
  size_t length;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 2 || !arg_int(env, argv[0], &fd) || !arg_bytes(env, argv[1], &data, &length))
    return throw_type(env, "recvmsg(fd, buffer: Uint8Array)");
  union {
    char buf[CMSG_SPACE(MAX_FDS * sizeof(int))];
    struct cmsghdr align;
  } control;
  struct iovec iov = {.iov_base = data, .iov_len = length};
  struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf, .msg_controllen = sizeof control.buf};
  ssize_t n;
  do n = recvmsg(fd, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
  while (n < 0 && errno == EINTR);
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) return make_null(env);
    return throw_errno(env, "recvmsg", errno);
  }
  int fds[MAX_FDS];
  size_t count = 0;
  for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c != NULL; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    int *received = (int *)CMSG_DATA(c);
    for (size_t i = 0; i < k; i++) {
      if (count < MAX_FDS) fds[count++] = received[i];
      else close(received[i]);
    }
  }
  if (msg.msg_flags & MSG_CTRUNC) {
    for (size_t i = 0; i < count; i++) close(fds[i]);
    return throw_errno(env, "recvmsg (too many descriptors)", EMSGSIZE);
  }
  napi_value result, list;
  CHECK(napi_create_object(env, &result));
  CHECK(napi_create_array_with_length(env, count, &list));
  for (size_t i = 0; i < count; i++) napi_set_element(env, list, (uint32_t)i, make_int(env, fds[i]));
  napi_set_named_property(env, result, "bytes", make_int(env, n));
  napi_set_named_property(env, result, "fds", list);
  return result;
}

// sendmsg(fd, buffer, fds?, timeoutMs = 1000) -> bytes sent; when the socket buffer is full it
// waits up to timeoutMs for space, then throws ETIMEDOUT (timeoutMs 0: EAGAIN at once).
static napi_value js_sendmsg(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  int32_t timeout_ms = 1000;
  int32_t fd;
  uint8_t *data;
  size_t length;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 2 || !arg_int(env, argv[0], &fd) || !arg_bytes(env, argv[1], &data, &length))
    return throw_type(env, "sendmsg(fd, buffer: Uint8Array, fds?: number[])");
  int fds[MAX_FDS];
  uint32_t count = 0;
  if (argc > 3 && !arg_int(env, argv[3], &timeout_ms)) return throw_type(env, "sendmsg: timeoutMs must be an integer");
  if (argc > 2) {
    bool is_array = false;
    napi_is_array(env, argv[2], &is_array);
    if (is_array) {
      napi_get_array_length(env, argv[2], &count);
      if (count > MAX_FDS) return throw_type(env, "sendmsg: at most 16 descriptors");
      for (uint32_t i = 0; i < count; i++) {
        napi_value element;
        napi_get_element(env, argv[2], i, &element);
        if (!arg_int(env, element, &fds[i])) return throw_type(env, "sendmsg: fds must be integers");
      }
    }
  }
  union {
    char buf[CMSG_SPACE(MAX_FDS * sizeof(int))];
    struct cmsghdr align;
  } control;
  memset(&control, 0, sizeof control);
  struct iovec iov = {.iov_base = data, .iov_len = length};
  struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
  if (count > 0) {
    msg.msg_control = control.buf;
    msg.msg_controllen = CMSG_SPACE(count * sizeof(int));
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(count * sizeof(int));
    memcpy(CMSG_DATA(c), fds, count * sizeof(int));
  }
  for (;;) {
    ssize_t n = sendmsg(fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n >= 0) return make_int(env, n);
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) return throw_errno(env, "sendmsg", errno);
    if (timeout_ms <= 0) return throw_errno(env, "sendmsg", EAGAIN);
    struct pollfd p = {.fd = fd, .events = POLLOUT};
    int ready = poll(&p, 1, timeout_ms);
    if (ready == 0) return throw_errno(env, "sendmsg", ETIMEDOUT);
    if (ready < 0 && errno != EINTR) return throw_errno(env, "poll", errno);
  }
}

// Every mapping this addon made and has not unmapped yet. munmap() and the GC finalizer both
// consult it, so a region is unmapped once: after an explicit munmap the address may be reused by
// another mapping, which a late finalizer must not tear down. (Worker threads may load the addon.)
typedef struct mapping {
  void *address;
  size_t length;
  struct mapping *next;
} mapping;
static mapping *mappings;
static pthread_mutex_t mappings_lock = PTHREAD_MUTEX_INITIALIZER;

// Removes the mapping at `address` from the table; returns it (the caller unmaps and frees it).
static mapping *take_mapping(void *address) {
  pthread_mutex_lock(&mappings_lock);
  mapping **at = &mappings;
  while (*at != NULL && (*at)->address != address) at = &(*at)->next;
  mapping *found = *at;
  if (found != NULL) *at = found->next;
  pthread_mutex_unlock(&mappings_lock);
  return found;
}

static void unmap_on_gc(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  mapping *m = take_mapping(data);
  if (m == NULL) return; // unmapped explicitly before
  munmap(m->address, m->length);
  free(m);
}

// mmap(fd, length, offset) -> ArrayBuffer over a shared read/write mapping, unmapped when collected.
static napi_value js_mmap(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  int32_t fd;
  int64_t length, offset = 0;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 2 || !arg_int(env, argv[0], &fd) || napi_get_value_int64(env, argv[1], &length) != napi_ok ||
      (argc > 2 && napi_get_value_int64(env, argv[2], &offset) != napi_ok))
    return throw_type(env, "mmap(fd, length, offset?)");
  if (length <= 0 || offset < 0 || (offset & (sysconf(_SC_PAGESIZE) - 1)) != 0)
    return throw_errno(env, "mmap", EINVAL);
  // A mapping past the end of a file maps fine, but touching it raises SIGBUS: refuse regions
  // larger than the file (memfd and hugetlbfs guest RAM are regular files with a size).
  struct stat st;
  if (fstat(fd, &st) < 0) return throw_errno(env, "fstat", errno);
  if (S_ISREG(st.st_mode) && (st.st_size < offset || st.st_size - offset < length))
    return throw_errno(env, "mmap (region past the end of its file)", EINVAL);
  void *address = mmap(NULL, (size_t)length, PROT_READ | PROT_WRITE, MAP_SHARED, fd, (off_t)offset);
  if (address == MAP_FAILED) return throw_errno(env, "mmap", errno);
  mapping *m = malloc(sizeof *m);
  napi_value buffer;
  if (m == NULL ||
      napi_create_external_arraybuffer(env, address, (size_t)length, unmap_on_gc, NULL, &buffer) != napi_ok) {
    free(m);
    munmap(address, (size_t)length);
    return throw_errno(env, "napi_create_external_arraybuffer", ENOMEM);
  }
  *m = (mapping){.address = address, .length = (size_t)length};
  pthread_mutex_lock(&mappings_lock);
  m->next = mappings;
  mappings = m;
  pthread_mutex_unlock(&mappings_lock);
  return buffer;
}

// munmap(arrayBuffer) -> true when it unmapped a mapping of ours. The buffer is detached first, so
// every view of it becomes empty and no JavaScript can touch the memory afterwards; a buffer that
// is not (or no longer) a mapping of ours gives false.
static napi_value js_munmap(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  bool is_buffer = false;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1 || napi_is_arraybuffer(env, argv[0], &is_buffer) != napi_ok || !is_buffer)
    return throw_type(env, "munmap(buffer: ArrayBuffer)");
  void *data = NULL;
  size_t length = 0;
  napi_value result;
  if (napi_get_arraybuffer_info(env, argv[0], &data, &length) != napi_ok || data == NULL) {
    napi_get_boolean(env, false, &result);
    return result;
  }
  mapping *m = take_mapping(data);
  if (m != NULL && napi_detach_arraybuffer(env, argv[0]) != napi_ok) {
    // Not detachable: keep it mapped (and in the table) rather than leave live views dangling.
    pthread_mutex_lock(&mappings_lock);
    m->next = mappings;
    mappings = m;
    pthread_mutex_unlock(&mappings_lock);
    return throw_errno(env, "munmap (buffer cannot be detached)", EBUSY);
  }
  if (m != NULL) {
    munmap(m->address, m->length);
    free(m);
  }
  napi_get_boolean(env, m != NULL, &result);
  return result;
}

// memfd(name, size, seal?) -> fd of anonymous shared memory (what a VMM backs guest RAM with).
// With seal, its size is fixed for good (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL): whoever we
// hand it to may map all of it without fearing SIGBUS from a later ftruncate.
static napi_value js_memfd(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  char name[64];
  size_t n;
  int64_t size;
  bool seal = false;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 2 || napi_get_value_string_utf8(env, argv[0], name, sizeof name, &n) != napi_ok ||
      napi_get_value_int64(env, argv[1], &size) != napi_ok || size < 0 ||
      (argc > 2 && napi_get_value_bool(env, argv[2], &seal) != napi_ok))
    return throw_type(env, "memfd(name, size, seal?)");
  int fd = memfd_create(name, MFD_CLOEXEC | (seal ? MFD_ALLOW_SEALING : 0));
  if (fd < 0) return throw_errno(env, "memfd_create", errno);
  if (ftruncate(fd, (off_t)size) < 0) return close_and_throw(env, fd, "ftruncate");
  if (seal && fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0)
    return close_and_throw(env, fd, "fcntl(F_ADD_SEALS)");
  return make_int(env, fd);
}

// sizeSealed(fd) -> true when the descriptor's size can never change again (a memfd sealed against
// shrinking and growing); false for anything else, sealable or not.
static napi_value js_size_sealed(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  int32_t fd;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1 || !arg_int(env, argv[0], &fd)) return throw_type(env, "sizeSealed(fd)");
  int seals = fcntl(fd, F_GET_SEALS);
  if (seals < 0 && errno == EBADF) return throw_errno(env, "fcntl(F_GET_SEALS)", errno);
  napi_value result;
  napi_get_boolean(env, seals >= 0 && (seals & (F_SEAL_SHRINK | F_SEAL_GROW)) == (F_SEAL_SHRINK | F_SEAL_GROW),
                   &result);
  return result;
}

// peerCredentials(fd) -> { pid, uid, gid } of the process at the other end of a unix socket.
static napi_value js_peer_credentials(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  int32_t fd;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1 || !arg_int(env, argv[0], &fd)) return throw_type(env, "peerCredentials(fd)");
  struct ucred cred;
  socklen_t length = sizeof cred;
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &length) < 0) return throw_errno(env, "getsockopt(SO_PEERCRED)", errno);
  napi_value result;
  CHECK(napi_create_object(env, &result));
  napi_set_named_property(env, result, "pid", make_int(env, cred.pid));
  napi_set_named_property(env, result, "uid", make_int(env, cred.uid));
  napi_set_named_property(env, result, "gid", make_int(env, cred.gid));
  return result;
}

// eventfd(initial?) -> fd (non-blocking).
static napi_value js_eventfd(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  int32_t initial = 0;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc > 0) arg_int(env, argv[0], &initial);
  int fd = eventfd((unsigned)initial, EFD_NONBLOCK | EFD_CLOEXEC);
  if (fd < 0) return throw_errno(env, "eventfd", errno);
  return make_int(env, fd);
}

// eventfdRead(fd) -> the counter (reset to 0), or null when it is 0.
static napi_value js_eventfd_read(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  int32_t fd;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1 || !arg_int(env, argv[0], &fd)) return throw_type(env, "eventfdRead(fd)");
  uint64_t value;
  ssize_t n;
  do n = read(fd, &value, sizeof value);
  while (n < 0 && errno == EINTR);
  if (n < 0) {
    if (errno == EAGAIN) return make_null(env);
    return throw_errno(env, "read", errno);
  }
  if (n != sizeof value) return throw_errno(env, "read", EIO);
  napi_value out;
  napi_create_double(env, (double)value, &out);
  return out;
}

// eventfdWrite(fd, value?) adds value (default 1) to the counter.
static napi_value js_eventfd_write(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  int32_t fd, value = 1;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1 || !arg_int(env, argv[0], &fd)) return throw_type(env, "eventfdWrite(fd, value?)");
  if (argc > 1) arg_int(env, argv[1], &value);
  uint64_t add = (uint64_t)(uint32_t)value;
  ssize_t n;
  do n = write(fd, &add, sizeof add);
  while (n < 0 && errno == EINTR);
  if (n < 0 && errno != EAGAIN) return throw_errno(env, "write", errno);
  return NULL;
}

// keepFreedMemory(mmapThreshold, trimThreshold) -> true when glibc took both settings. Big
// allocations then come from the heap and freed memory stays there instead of going back to the
// kernel, so a server that allocates the same big buffers call after call (ONNX Runtime's
// packing buffers, 1 MiB outputs) stops paying a page fault for every 4 KiB of them each time.
static napi_value js_keep_freed_memory(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  int32_t mmap_threshold, trim_threshold;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 2 || !arg_int(env, argv[0], &mmap_threshold) || !arg_int(env, argv[1], &trim_threshold) ||
      mmap_threshold < 0 || trim_threshold < 0)
    return throw_type(env, "keepFreedMemory(mmapThreshold, trimThreshold)");
  bool ok = false;
#ifdef __GLIBC__
  ok = mallopt(M_MMAP_THRESHOLD, mmap_threshold) == 1 && mallopt(M_TRIM_THRESHOLD, trim_threshold) == 1;
#endif
  napi_value result;
  napi_get_boolean(env, ok, &result);
  return result;
}

static napi_value js_close(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  int32_t fd;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1 || !arg_int(env, argv[0], &fd)) return throw_type(env, "close(fd)");
  if (fd >= 0 && close(fd) < 0 && errno != EINTR) return throw_errno(env, "close", errno);
  return NULL;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor functions[] = {
      {"listen", NULL, js_listen, NULL, NULL, NULL, napi_enumerable, NULL},
      {"accept", NULL, js_accept, NULL, NULL, NULL, napi_enumerable, NULL},
      {"connect", NULL, js_connect, NULL, NULL, NULL, napi_enumerable, NULL},
      {"recvmsg", NULL, js_recvmsg, NULL, NULL, NULL, napi_enumerable, NULL},
      {"sendmsg", NULL, js_sendmsg, NULL, NULL, NULL, napi_enumerable, NULL},
      {"mmap", NULL, js_mmap, NULL, NULL, NULL, napi_enumerable, NULL},
      {"munmap", NULL, js_munmap, NULL, NULL, NULL, napi_enumerable, NULL},
      {"memfd", NULL, js_memfd, NULL, NULL, NULL, napi_enumerable, NULL},
      {"sizeSealed", NULL, js_size_sealed, NULL, NULL, NULL, napi_enumerable, NULL},
      {"peerCredentials", NULL, js_peer_credentials, NULL, NULL, NULL, napi_enumerable, NULL},
      {"eventfd", NULL, js_eventfd, NULL, NULL, NULL, napi_enumerable, NULL},
      {"eventfdRead", NULL, js_eventfd_read, NULL, NULL, NULL, napi_enumerable, NULL},
      {"eventfdWrite", NULL, js_eventfd_write, NULL, NULL, NULL, napi_enumerable, NULL},
      {"close", NULL, js_close, NULL, NULL, NULL, napi_enumerable, NULL},
      {"keepFreedMemory", NULL, js_keep_freed_memory, NULL, NULL, NULL, napi_enumerable, NULL},
      {"tcpQuickAck", NULL, js_tcp_quick_ack, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  napi_define_properties(env, exports, sizeof functions / sizeof functions[0], functions);
  define_watcher(env, exports);
  define_vsock(env, exports);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
