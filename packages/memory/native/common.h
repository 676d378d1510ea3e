// Helpers shared by the addon's C files.
#ifndef VACCEL_NATIVE_COMMON_H
#define VACCEL_NATIVE_COMMON_H

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <node_api.h>
#include <uv.h>

#define CHECK(call)                                                                                \
  do {                                                                                             \
    if ((call) != napi_ok) return NULL;                                                            \
  } while (0)

// Throws an Error shaped like Node's system errors: message, code ("EAGAIN"), errno, syscall.
static inline napi_value throw_errno(napi_env env, const char *syscall, int err) {
  char text[256];
  snprintf(text, sizeof text, "%s: %s", syscall, strerror(err));
  napi_value message, code, error, number, name;
  napi_create_string_utf8(env, text, NAPI_AUTO_LENGTH, &message);
  napi_create_string_utf8(env, uv_err_name(-err), NAPI_AUTO_LENGTH, &code);
  napi_create_error(env, code, message, &error);
  napi_create_int32(env, err, &number);
  napi_set_named_property(env, error, "errno", number);
  napi_create_string_utf8(env, syscall, NAPI_AUTO_LENGTH, &name);
  napi_set_named_property(env, error, "syscall", name);
  napi_throw(env, error);
  return NULL;
}

// Closes fd (a socket or memfd being set up) and throws the errno its failing call left.
static inline napi_value close_and_throw(napi_env env, int fd, const char *syscall) {
  int err = errno;
  close(fd);
  return throw_errno(env, syscall, err);
}

static inline napi_value throw_type(napi_env env, const char *message) {
  napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", message);
  return NULL;
}

static inline int arg_int(napi_env env, napi_value value, int32_t *out) {
  return napi_get_value_int32(env, value, out) == napi_ok;
}

static inline napi_value make_int(napi_env env, int64_t value) {
  napi_value out;
  napi_create_int64(env, value, &out);
  return out;
}

static inline napi_value make_null(napi_env env) {
  napi_value out;
  napi_get_null(env, &out);
  return out;
}

// Adds the Watcher class to `exports` (watcher.c).
void define_watcher(napi_env env, napi_value exports);

// Adds the AF_VSOCK functions and the descriptor adoption helpers to `exports` (vsock.c).
void define_vsock(napi_env env, napi_value exports);

// tcpQuickAck (tcp.c).
napi_value js_tcp_quick_ack(napi_env env, napi_callback_info info);

#endif
