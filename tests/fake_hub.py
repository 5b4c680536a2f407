"""A local imitation of the Hugging Face Hub's HTTP API, for tests.

Nothing here touches the network: ``huggingface_hub`` is pointed at this
server (``HF_ENDPOINT`` / ``HfApi(endpoint=...)``) and talks to it exactly as
it would to the Hub, so ``hf_hub_download``, ``HfApi.create_repo``,
``create_branch``, ``upload_folder`` and ``create_commit`` run unmodified.

Implemented (model repos only; what ``keras_adadim.hub`` and the
``huggingface_hub`` calls it makes need):

* ``GET|HEAD /{org}/{name}/resolve/{revision}/{path}``: file download with the
  headers ``hf_hub_download`` reads (X-Repo-Commit, ETag, Content-Length,
  Range; X-Error-Code EntryNotFound / RevisionNotFound on 404).
* ``POST /api/repos/create``: create a repo (409 if it exists, as the Hub).
* ``POST /api/validate-yaml``: parse the model card's YAML front matter
  (400 with the errors if it is not a YAML mapping).
* ``POST /api/models/{repo}/branch/{branch}``: create a branch (409 if it
  exists) from ``startingPoint`` (default ``main``).
* ``POST /api/models/{repo}/preupload/{revision}``: answers ``uploadMode
  "regular"`` for every file (so no LFS/Xet storage is needed) with the
  git-sha1 ``oid`` of the file already there, so unchanged files are skipped.
* ``POST /api/models/{repo}/commit/{revision}``: the ndjson commit (header,
  base64 ``file``, ``deletedFile``, ``deletedFolder``; ``lfsFile`` is refused
  since the preupload never asks for LFS; ``parentCommit`` is checked).
* ``GET /api/models/{repo}/tree/{revision}``: the file listing
  (``list_repo_files``, used by ``upload_folder(delete_patterns=...)``).
* ``GET /api/models/{repo}[/revision/{revision}]``: ``repo_info``.
* ``GET /api/agent-harnesses``: an empty registry (``huggingface_hub`` fetches
  it once per process to fill its user agent).

Write endpoints require ``Authorization: Bearer <token>`` with the server's
``token`` (401 otherwise). Storage: branch ``main`` of ``org/name`` is the
folder ``root/org/name`` (tests may also put files there by hand: such a repo
exists with head ``COMMIT``); another branch ``b`` is ``root/org/name@b``
(``b`` URL-quoted). Every request is logged in ``requests`` as
``(method, path)``, every commit in ``commits``.
"""

import base64
import hashlib
import http.server
import json
import os
import shutil
import threading
import urllib.parse
from pathlib import Path

COMMIT = "0123456789abcdef0123456789abcdef01234567"
TOKEN = "fake"


def git_blob_sha1(data):
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class _Reply(Exception):
    """Raised by a handler to answer with ``status`` and a JSON body."""

    def __init__(self, status, body=None, error_code=None, headers=()):
        super().__init__(status, body)
        self.status, self.body, self.error_code = status, body, error_code
        self.headers = list(headers)


def _not_found(what, code):
    return _Reply(404, {"error": what}, code)


class FakeHubHandler(http.server.BaseHTTPRequestHandler):
    root = None      # set by make_server
    token = TOKEN
    requests = None  # [(method, path)]
    commits = None   # [{"repo_id", "branch", "oid", "parent", "summary", ...}]
    repos = None     # repo_id -> {"private": bool, "branches": {name: oid}}
    lock = None

    def log_message(self, *args):
        pass

    # ---------------------------------------------------------- plumbing
    def _parts(self):
        path = urllib.parse.urlsplit(self.path).path
        return [urllib.parse.unquote(p) for p in path.strip("/").split("/")]

    def _query(self):
        return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(self.path).query))

    def _endpoint(self):
        return f"http://{self.headers['Host']}"

    def _body(self):
        return self._raw

    def _json_body(self):
        try:
            return json.loads(self._body() or b"{}")
        except ValueError as e:
            raise _Reply(400, {"error": f"invalid JSON: {e}"}) from e

    def _send(self, status, body=b"", headers=(), content_type=None):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        if content_type:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _send_json(self, status, obj, error_code=None, headers=()):
        headers = list(headers)
        if error_code:
            headers.append(("X-Error-Code", error_code))
        if error_code and isinstance(obj, dict) and "error" in obj:
            headers.append(("X-Error-Message", obj["error"]))
        self._send(status, json.dumps(obj).encode(), headers, "application/json")

    def _dispatch(self, routes):
        type(self).requests.append((self.command, self.path))
        # Read the whole body first, even for a request that is refused.
        n = int(self.headers.get("Content-Length") or 0)
        self._raw = self.rfile.read(n) if n else b""
        try:
            parts = self._parts()
            for match, handler in routes:
                args = match(parts)
                if args is not None:
                    return handler(*args)
            raise _Reply(404, {"error": f"no such endpoint: {self.path}"})
        except _Reply as r:
            self._send_json(r.status, r.body or {}, r.error_code, r.headers)
        except Exception as e:  # noqa: BLE001 - a bug in the fake: say so
            self._send_json(500, {"error": f"fake Hub: {type(e).__name__}: {e}"})

    def _authorize(self):
        if self.headers.get("Authorization") != f"Bearer {self.token}":
            raise _Reply(401, {"error": "Invalid credentials in Authorization header"})

    # ------------------------------------------------------------ storage
    def _repo(self, repo_id, create=False):
        """The repo's state; a folder put under ``root`` by hand counts."""
        repos = type(self).repos
        if repo_id not in repos:
            if not create and not Path(self.root, repo_id).is_dir():
                raise _not_found(f"Repository {repo_id} not found", "RepoNotFound")
            repos[repo_id] = {"private": False, "branches": {"main": COMMIT}}
        return repos[repo_id]

    def _branch_dir(self, repo_id, branch):
        if branch == "main":
            return Path(self.root, repo_id)
        return Path(self.root, f"{repo_id}@{urllib.parse.quote(branch, safe='')}")

    def _branch(self, repo_id, revision):
        """``(branch, head oid)`` for a branch name or a head commit."""
        branches = self._repo(repo_id)["branches"]
        if revision in branches:
            return revision, branches[revision]
        for name, oid in branches.items():
            if revision == oid:
                return name, oid
        raise _not_found(f"Invalid rev id: {revision}", "RevisionNotFound")

    @staticmethod
    def _files(directory):
        if not directory.is_dir():
            return []
        return sorted(
            p.relative_to(directory).as_posix()
            for p in directory.rglob("*") if p.is_file()
        )

    @staticmethod
    def _safe_path(path):
        pure = Path(path)
        if not path or pure.is_absolute() or ".." in pure.parts:
            raise _Reply(400, {"error": f"invalid path in repo: {path!r}"})
        return path

    # ---------------------------------------------------------- downloads
    def _resolve(self, org, name, revision, *path):
        repo_id, filename = f"{org}/{name}", "/".join(path)
        with self.lock:
            try:
                branch, head = self._branch(repo_id, revision)
            except _Reply as r:
                if r.error_code != "RepoNotFound":
                    raise
                branch, head = "main", COMMIT  # no such repo: no such file
        file = self._branch_dir(repo_id, branch) / filename
        if not file.is_file():
            raise _Reply(404, {"error": "Entry not found"}, "EntryNotFound",
                         [("X-Repo-Commit", head)])
        data = file.read_bytes()
        start = 0
        rng = self.headers.get("Range")
        if rng and rng.startswith("bytes="):
            start = int(rng[6:].split("-")[0] or 0)
        headers = [("X-Repo-Commit", head),
                   ("ETag", f'"{hashlib.sha256(data).hexdigest()}"')]
        if start:
            headers.append(
                ("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            )
        self._send(206 if start else 200, data[start:], headers,
                   "application/octet-stream")

    def _tree(self, org, name, revision, *sub):
        repo_id = f"{org}/{name}"
        with self.lock:
            branch, _ = self._branch(repo_id, revision)
            base = self._branch_dir(repo_id, branch)
            prefix = "/".join(sub)
            recursive = self._query().get("recursive", "").lower() in ("1", "true")
            out, seen = [], set()
            for rel in self._files(base):
                if prefix and not rel.startswith(prefix + "/"):
                    continue
                rest = rel[len(prefix) + 1:] if prefix else rel
                if "/" in rest and not recursive:
                    folder = (prefix + "/" if prefix else "") + rest.split("/")[0]
                    if folder not in seen:
                        seen.add(folder)
                        out.append({"type": "directory", "path": folder,
                                    "oid": hashlib.sha1(folder.encode()).hexdigest()})
                    continue
                data = (base / rel).read_bytes()
                out.append({"type": "file", "path": rel, "size": len(data),
                            "oid": git_blob_sha1(data)})
        self._send_json(200, out)

    def _info(self, org, name, revision="main"):
        repo_id = f"{org}/{name}"
        with self.lock:
            state = self._repo(repo_id)
            branch, head = self._branch(repo_id, revision)
            files = self._files(self._branch_dir(repo_id, branch))
        self._send_json(200, {
            "id": repo_id, "modelId": repo_id, "sha": head,
            "private": state["private"],
            "siblings": [{"rfilename": f} for f in files],
        })

    # ------------------------------------------------------------- writes
    def _create_repo(self):
        self._authorize()
        payload = self._json_body()
        if payload.get("type", "model") != "model":
            raise _Reply(400, {"error": "the fake Hub only hosts model repos"})
        repo_id = f"{payload.get('organization') or 'user'}/{payload['name']}"
        url = f"{self._endpoint()}/{repo_id}"
        with self.lock:
            if repo_id in type(self).repos or Path(self.root, repo_id).is_dir():
                raise _Reply(409, {"error": "You already created this model repo",
                                   "url": url})
            Path(self.root, repo_id).mkdir(parents=True)
            state = self._repo(repo_id, create=True)
            state["private"] = payload.get("visibility") == "private"
        self._send_json(200, {"url": url, "name": repo_id})

    def _validate_yaml(self):
        import yaml

        content = self._json_body().get("content", "")
        if not content.startswith("---\n") or "\n---" not in content[3:]:
            return self._send_json(200, {"errors": [], "warnings": [
                {"message": "Empty or missing yaml metadata in repo card"}]})
        front = content[4:content.index("\n---", 3)]
        try:
            meta = yaml.safe_load(front)
        except yaml.YAMLError as e:
            raise _Reply(400, {"errors": [{"message": str(e)}]}) from e
        if not isinstance(meta, dict):
            raise _Reply(400, {"errors": [{"message": "metadata is not a mapping"}]})
        self._send_json(200, {"errors": [], "warnings": []})

    def _create_branch(self, org, name, *branch):
        self._authorize()
        repo_id, branch = f"{org}/{name}", "/".join(branch)
        start = self._json_body().get("startingPoint") or "main"
        with self.lock:
            state = self._repo(repo_id)
            if branch in state["branches"]:
                raise _Reply(409, {"error": f"Reference {branch} already exists"})
            src, head = self._branch(repo_id, start)
            target = self._branch_dir(repo_id, branch)
            source = self._branch_dir(repo_id, src)
            if source.is_dir():
                shutil.copytree(source, target)
            else:
                target.mkdir(parents=True)
            state["branches"][branch] = head
        self._send_json(200, {})

    def _preupload(self, org, name, *revision):
        self._authorize()
        repo_id, revision = f"{org}/{name}", "/".join(revision)
        files = self._json_body().get("files") or []
        out = []
        with self.lock:
            branch, _ = self._branch(repo_id, revision)
            base = self._branch_dir(repo_id, branch)
            for f in files:
                there = base / self._safe_path(f["path"])
                oid = git_blob_sha1(there.read_bytes()) if there.is_file() else None
                out.append({"path": f["path"], "uploadMode": "regular",
                            "shouldIgnore": False, "oid": oid})
        self._send_json(200, {"files": out, "commitOid": None})

    def _commit(self, org, name, *revision):
        self._authorize()
        repo_id, revision = f"{org}/{name}", "/".join(revision)
        if self.headers.get("Content-Type") != "application/x-ndjson":
            raise _Reply(400, {"error": "expected application/x-ndjson"})
        try:
            lines = [json.loads(line) for line in self._body().splitlines()
                     if line.strip()]
        except ValueError as e:
            raise _Reply(400, {"error": f"invalid ndjson: {e}"}) from e
        if not lines or lines[0].get("key") != "header":
            raise _Reply(400, {"error": "the first line must be the header"})
        header = lines[0]["value"]
        if not header.get("summary"):
            raise _Reply(400, {"error": "empty commit summary"})
        writes, deletes = {}, []
        for item in lines[1:]:
            key, value = item.get("key"), item.get("value") or {}
            path = self._safe_path(value.get("path", ""))
            if key == "file":
                if value.get("encoding") != "base64":
                    raise _Reply(400, {"error": "file content must be base64"})
                writes[path] = base64.b64decode(value["content"], validate=True)
            elif key in ("deletedFile", "deletedFolder"):
                deletes.append((key, path))
            else:
                raise _Reply(400, {"error": f"unsupported operation {key!r} "
                                   "(the fake Hub's preupload never asks for LFS)"})
        with self.lock:
            branch, parent = self._branch(repo_id, revision)
            expected = header.get("parentCommit")
            if expected and expected != parent:
                raise _Reply(412, {"error": "A commit has happened since. "
                                   "Please refresh and try again."})
            base = self._branch_dir(repo_id, branch)
            for key, path in deletes:
                target = base / path
                if key == "deletedFile" and target.is_file():
                    target.unlink()
                elif key == "deletedFolder" and target.is_dir():
                    shutil.rmtree(target)
                else:
                    raise _not_found("A file with this name doesn't exist",
                                     "EntryNotFound")
            for path, data in writes.items():
                target = base / path
                target.parent.mkdir(parents=True, exist_ok=True)
                tmp = target.with_name(f".{target.name}.incoming")
                tmp.write_bytes(data)
                os.replace(tmp, target)
            digest = hashlib.sha1(parent.encode())
            digest.update(json.dumps(header, sort_keys=True).encode())
            for path in sorted(writes):
                digest.update(path.encode() + b"\0" + writes[path])
            for key, path in deletes:
                digest.update(f"{key}:{path}".encode())
            oid = digest.hexdigest()
            self._repo(repo_id)["branches"][branch] = oid
            type(self).commits.append({
                "repo_id": repo_id, "branch": branch, "oid": oid,
                "parent": parent, "summary": header["summary"],
                "description": header.get("description", ""),
                "files": sorted(writes), "deleted": [p for _, p in deletes],
                "authorization": self.headers.get("Authorization"),
            })
        self._send_json(200, {
            "commitUrl": f"{self._endpoint()}/{repo_id}/commit/{oid}",
            "commitOid": oid, "success": True, "hookOutput": "",
        })

    # ------------------------------------------------------------- routes
    @staticmethod
    def _route(*pattern, rest=None):
        """Match path segments: literal strings, or ``None`` for a segment
        that is captured; with ``rest=k``, at least ``k`` more segments,
        captured too (``rest=None``: none)."""
        n = len(pattern)

        def match(parts):
            if len(parts) < n + (rest or 0) or (rest is None and len(parts) != n):
                return None
            if any(want is not None and want != got
                   for want, got in zip(pattern, parts)):
                return None
            captured = [got for want, got in zip(pattern, parts) if want is None]
            return captured + parts[n:]

        return match

    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        r = self._route
        self._dispatch([
            (r("api", "agent-harnesses"),
             lambda: self._send_json(200, {"standardEnvVars": [], "harnesses": {}})),
            (r("api", "models", None, None, "tree", None, rest=0), self._tree),
            (r("api", "models", None, None), self._info),
            (r("api", "models", None, None, "revision", None), self._info),
            (r(None, None, "resolve", None, rest=1), self._resolve),
        ])

    def do_POST(self):
        r = self._route
        self._dispatch([
            (r("api", "repos", "create"), self._create_repo),
            (r("api", "validate-yaml"), self._validate_yaml),
            (r("api", "models", None, None, "branch", rest=1), self._create_branch),
            (r("api", "models", None, None, "preupload", rest=1), self._preupload),
            (r("api", "models", None, None, "commit", rest=1), self._commit),
        ])


def make_server(root, token=TOKEN):
    """A started ``ThreadingHTTPServer`` on 127.0.0.1 (a free port) serving
    ``root``; returns ``(server, handler_class)``. Stop it with
    ``server.shutdown(); server.server_close()``."""
    handler = type("Handler", (FakeHubHandler,), {
        "root": str(root), "token": token, "requests": [], "commits": [],
        "repos": {}, "lock": threading.RLock(),
    })
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, handler
