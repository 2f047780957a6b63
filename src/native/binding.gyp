{
  "targets": [
    {
      "target_name": "soad",
      "sources": [
        "soad.c", "napi.c", "sys.c", "listen.c", "poll.c", "count.c", "spawn.c", "relay.c", "notify.c", "peer.c",
        "users.c", "pipe.c"
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
          "sources": ["helper/sentinel.c"],
          "cflags": ["-std=gnu11", "-Wall", "-Wextra", "-O2"]
        },
        {
          "target_name": "soad-guard",
          "type": "executable",
          "sources": ["helper/guard.c"],
          "cflags": ["-std=gnu11", "-Wall", "-Wextra", "-O2"]
        }
      ]
    }]
  ]
}
