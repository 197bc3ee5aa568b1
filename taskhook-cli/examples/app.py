"""A tiny app behind `taskhook relay`: stores each finished task's result URLs.

    python3 app.py [PORT]        # default 8000; 0 picks a free port

The relay POSTs each task here once, with the provider's original body and
these headers: taskhook-task-id, taskhook-attempt (1, 2, ...) and
taskhook-received-at. Answer 2xx when the task is handled; a 5xx (or no
answer) makes the relay retry later; another 4xx makes it a dead letter,
listed and replayable on the relay's admin page (http://127.0.0.1:9091/).
The relay already dropped duplicates, so this code runs once per task.
"""

import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

results = {}


class Callback(BaseHTTPRequestHandler):
    def do_POST(self):
        length = int(self.headers.get("content-length", 0))
        task = json.loads(self.rfile.read(length)).get("data", {})
        urls = []
        for media in (task.get("result") or {}).values():
            for item in media if isinstance(media, list) else []:
                url = item.get("url") if isinstance(item, dict) else None
                urls += url if isinstance(url, list) else [url] if url else []
        results[task.get("id")] = {"status": task.get("status"), "urls": urls}
        print(self.headers["taskhook-task-id"], task.get("status"), urls, flush=True)
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8000
    server = ThreadingHTTPServer(("127.0.0.1", port), Callback)
    print(f"app listening on 127.0.0.1:{server.server_address[1]}", flush=True)
    server.serve_forever()
