{
  "targets": [
    {
      "target_name": "soad",
      "sources": [
        "soad.c", "napi.c", "sys.c", "listen.c", "poll.c", "count.c", "spawn.c", "relay.c", "notify.c", "peer.c",
        "users.c", "pipe.c", "memory.c", "accept.c", "arm.c", "lane.c", "diag.c"
      ],
      "cflags": ["-std=gnu11", "-Wall", "-Wextra", "-Wshadow", "-Wstrict-prototypes", "-fvisibility=hidden", "-O2"],
      "xcode_settings": {
        "OTHER_CFLAGS": ["-std=gnu11", "-Wall", "-Wextra", "-Wshadow", "-Wstrict-prototypes", "-fvisibility=hidden"]
      }
    }
  ],
  "conditions": [
    ["OS=='linux'", {
      "targets": [
        {
          "target_name": "soad-sentinel",
          "type": "executable",
          "sources": ["helper/sentinel.c", "helper/start.c"],
          "cflags": ["-std=gnu11", "-Wall", "-Wextra", "-O2"],
          "ldflags": ["-Wl,--wrap=__libc_start_main"]
        },
        {
          "target_name": "soad-guard",
          "type": "executable",
          "sources": ["helper/guard.c", "helper/start.c"],
          "cflags": ["-std=gnu11", "-Wall", "-Wextra", "-O2"],
          "ldflags": ["-Wl,--wrap=__libc_start_main"]
        }
      ]
    }]
  ]
}
