vcl 4.1;
# Varnish in front of the bench origin. Template: @ORIGIN_PORT@.
# Same TTL as Aside and nginx (1h), keep-alive to the origin (Varnish's default),
# request coalescing (Varnish's waiting list, default), objects in malloc storage.

backend origin {
    .host = "127.0.0.1";
    .port = "@ORIGIN_PORT@";
    .max_connections = 256;
    .first_byte_timeout = 30s;
}

sub vcl_recv {
    # Benchmark clients send no cookies or auth; hash every GET/HEAD.
    if (req.method != "GET" && req.method != "HEAD") {
        return (pass);
    }
    return (hash);
}

sub vcl_backend_response {
    if (beresp.status == 200) {
        set beresp.ttl = 1h;
        set beresp.grace = 0s;
    }
}

sub vcl_deliver {
    if (obj.hits > 0) {
        set resp.http.X-Cache = "HIT";
    } else {
        set resp.http.X-Cache = "MISS";
    }
}
