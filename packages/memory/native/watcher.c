// Watcher: calls back on the event loop whenever a descriptor is readable (libuv uv_poll), so the
// backend waits on sockets and eventfds without threads or busy loops. A writable watcher calls
// back when it is writable instead: how a non-blocking connect (vsock.c) says it has finished.
#include <stdlib.h>

#include "common.h"

typedef struct {
  uv_poll_t handle;
  napi_env env;
  napi_ref callback;
  napi_ref self;
  napi_async_context context;
  int open;       // watching: the JS object is pinned by `self`
  int closed;     // libuv has let go of the handle
  int finalized;  // the JS object is gone
} Watcher;

// The struct lives until both libuv (close callback) and the JS wrapper (finalizer) let go of it,
// so a close() on an already closed watcher never touches freed memory.
static void watcher_closed(uv_handle_t *handle) {
  Watcher *w = handle->data;
  w->closed = 1;
  if (w->finalized) free(w);
}

// Stops watching and unpins the JS object; the struct is freed once libuv and the GC let go.
static void watcher_stop(Watcher *w) {
  if (!w->open) return;
  w->open = 0;
  uv_poll_stop(&w->handle);
  napi_delete_reference(w->env, w->callback);
  napi_delete_reference(w->env, w->self);
  napi_async_destroy(w->env, w->context);
  napi_remove_env_cleanup_hook(w->env, (void (*)(void *))watcher_stop, w);
  uv_close((uv_handle_t *)&w->handle, watcher_closed);
}

static void watcher_finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  Watcher *w = data;
  w->finalized = 1;
  if (w->closed) free(w);
}

static void watcher_event(uv_poll_t *handle, int status, int events) {
  (void)events;
  Watcher *w = handle->data;
  if (!w->open) return;
  napi_env env = w->env;
  napi_handle_scope scope;
  napi_open_handle_scope(env, &scope);
  napi_value callback, self, argument, result;
  napi_get_reference_value(env, w->callback, &callback);
  napi_get_reference_value(env, w->self, &self);
  if (status < 0) napi_create_string_utf8(env, uv_err_name(status), NAPI_AUTO_LENGTH, &argument);
  else napi_get_null(env, &argument);
  // make_callback runs microtasks afterwards and reports exceptions as uncaught, like any I/O callback.
  if (napi_make_callback(env, w->context, self, callback, 1, &argument, &result) == napi_pending_exception) {
    napi_value exception;
    napi_get_and_clear_last_exception(env, &exception);
    napi_fatal_exception(env, exception);
  }
  napi_close_handle_scope(env, scope);
}

static Watcher *unwrap_watcher(napi_env env, napi_callback_info info) {
  napi_value self;
  Watcher *w = NULL;
  if (napi_get_cb_info(env, info, NULL, NULL, &self, NULL) != napi_ok) return NULL;
  napi_unwrap(env, self, (void **)&w);
  return w;
}

// new Watcher(fd, callback, writable = false): callback(error: string | null) each time fd is
// readable (writable).
static napi_value watcher_new(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3], self;
  int32_t fd;
  bool writable = false;
  CHECK(napi_get_cb_info(env, info, &argc, argv, &self, NULL));
  napi_valuetype type;
  if (argc < 2 || !arg_int(env, argv[0], &fd) || napi_typeof(env, argv[1], &type) != napi_ok ||
      type != napi_function || (argc > 2 && napi_get_value_bool(env, argv[2], &writable) != napi_ok))
    return throw_type(env, "new Watcher(fd, callback, writable?)");
  uv_loop_t *loop;
  CHECK(napi_get_uv_event_loop(env, &loop));
  Watcher *w = calloc(1, sizeof *w);
  if (w == NULL) return throw_errno(env, "calloc", ENOMEM);
  int rc = uv_poll_init(loop, &w->handle, fd);
  if (rc < 0) {
    free(w);
    return throw_errno(env, "uv_poll_init", -rc);
  }
  w->handle.data = w;
  w->env = env;
  w->open = 1;
  napi_value name;
  napi_create_string_utf8(env, "vaccel.Watcher", NAPI_AUTO_LENGTH, &name);
  napi_async_init(env, self, name, &w->context);
  napi_create_reference(env, argv[1], 1, &w->callback);
  // The watcher keeps itself alive while it watches: closing it is the only way to stop.
  napi_create_reference(env, self, 1, &w->self);
  napi_wrap(env, self, w, watcher_finalize, NULL, NULL);
  napi_add_env_cleanup_hook(env, (void (*)(void *))watcher_stop, w);
  rc = uv_poll_start(&w->handle, (writable ? UV_WRITABLE : UV_READABLE) | UV_DISCONNECT, watcher_event);
  if (rc < 0) {
    watcher_stop(w);
    return throw_errno(env, "uv_poll_start", -rc);
  }
  return self;
}

static napi_value watcher_close(napi_env env, napi_callback_info info) {
  Watcher *w = unwrap_watcher(env, info);
  if (w != NULL) watcher_stop(w);
  return NULL;
}

// unref(): the watcher no longer keeps the process alive (ref() undoes it).
static napi_value watcher_unref(napi_env env, napi_callback_info info) {
  Watcher *w = unwrap_watcher(env, info);
  if (w != NULL && w->open) uv_unref((uv_handle_t *)&w->handle);
  return NULL;
}

static napi_value watcher_ref(napi_env env, napi_callback_info info) {
  Watcher *w = unwrap_watcher(env, info);
  if (w != NULL && w->open) uv_ref((uv_handle_t *)&w->handle);
  return NULL;
}

void define_watcher(napi_env env, napi_value exports) {
  napi_property_descriptor methods[] = {
      {"close", NULL, watcher_close, NULL, NULL, NULL, napi_default, NULL},
      {"ref", NULL, watcher_ref, NULL, NULL, NULL, napi_default, NULL},
      {"unref", NULL, watcher_unref, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_value watcher;
  napi_define_class(env, "Watcher", NAPI_AUTO_LENGTH, watcher_new, NULL, 3, methods, &watcher);
  napi_set_named_property(env, exports, "Watcher", watcher);
}
