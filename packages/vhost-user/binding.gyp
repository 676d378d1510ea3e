{
  "targets": [
    {
      "target_name": "vhost_native",
      "sources": ["native/vhost_native.c", "native/watcher.c"],
      "cflags": ["-std=gnu11", "-Wall", "-Wextra", "-Wno-unused-parameter", "-O2"],
      "conditions": [["OS!='linux'", { "type": "none" }]]
    }
  ]
}
