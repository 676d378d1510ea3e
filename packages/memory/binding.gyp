{
  "targets": [
    {
      "target_name": "vaccel_memory",
      "sources": ["native/memory.c", "native/watcher.c", "native/vsock.c", "native/tcp.c"],
      "cflags": ["-std=gnu11", "-Wall", "-Wextra", "-Wno-unused-parameter", "-O2"],
      "conditions": [["OS!='linux'", { "type": "none" }]]
    }
  ]
}
