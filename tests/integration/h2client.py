"""HTTP/2 clients for the integration tests, on Debian's python3-h2 (hyper-h2, hpack,
hyperframe) over Python's ssl or plain TCP (h2c with prior knowledge).

  * H2Client     - a well-behaved client: requests on many streams of one connection,
                   responses, event streams read per stream (StreamView works with
                   qs.SSEStream), flow control left to the test when auto_ack=False.
  * RawH2        - a frame-level peer for attacks: sends any frame (hyperframe objects or
                   bytes), reads and decodes the server's frames, notices GOAWAY and the
                   end of the connection; no state machine in the way.
  * H2HTTPConn   - qs.HTTPConn's interface (send HTTP/1.1 request bytes, read HTTP/1.1
                   response bytes) carried over HTTP/2: each request becomes a stream and
                   each response is written back as HTTP/1.1 (a body without a length is
                   chunked), so the HTTP/1.1 tests run unchanged over HTTP/2.

Every blocking call has a timeout (qs.T scales them for sanitizer builds).
"""

import http
import socket
import ssl
import time

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings
import hpack
import hyperframe.frame as hf

import qs
from qs import HOST, T

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

# RFC 9113 §7 error codes
NO_ERROR = 0x0
PROTOCOL_ERROR = 0x1
INTERNAL_ERROR = 0x2
FLOW_CONTROL_ERROR = 0x3
STREAM_CLOSED = 0x5
FRAME_SIZE_ERROR = 0x6
REFUSED_STREAM = 0x7
CANCEL = 0x8
COMPRESSION_ERROR = 0x9
ENHANCE_YOUR_CALM = 0xb


def connect(port, tls=None, timeout=None, rcvbuf=None, server_hostname=None):
    """A connected socket; tls: an ssl.SSLContext (it must offer ALPN h2)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        if rcvbuf:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.settimeout(timeout or T(10))
        sock.connect((HOST, port))
        if tls is not None:
            sock = tls.wrap_socket(sock, server_hostname=server_hostname or HOST)
    except BaseException:
        sock.close()
        raise
    return sock


def _recv(sock, timeout):
    """Bytes read (b"" at EOF or reset); raises socket.timeout."""
    sock.settimeout(max(timeout, 0.001))
    try:
        return sock.recv(65536)
    except (ConnectionResetError, BrokenPipeError, ssl.SSLEOFError, ssl.SSLZeroReturnError):
        return b""
    except ssl.SSLError as e:
        if "timed out" in str(e):
            raise socket.timeout(str(e))
        return b""


# --------------------------------------------------------------------------- H2Client

class StreamState:
    def __init__(self, stream_id):
        self.id = stream_id
        self.status = None
        self.headers = []      # [(name, value)] str, of the response
        self.data = bytearray()
        self.ended = False     # END_STREAM received
        self.reset = None      # RST_STREAM error code
        self.view = None


class StreamView:
    """One stream of an H2Client as qs.SSEStream wants a connection: `buf` (the stream's
    unread bytes), `_recv(timeout)` (pumps the connection), `eof` (the stream is over:
    ended, reset, or the connection closed), close()."""

    def __init__(self, client, state):
        self.client = client
        self.state = state
        self.buf = bytes(state.data)
        state.data = bytearray()
        state.view = self

    @property
    def eof(self):
        s = self.state
        return (s.ended or s.reset is not None or self.client.closed) and not self.buf

    def _recv(self, timeout):
        if self.eof:
            return False
        if self.state.ended or self.state.reset is not None or self.client.closed:
            return True  # data left in buf
        try:
            self.client.pump(timeout)
        except socket.timeout:
            raise
        return not self.eof

    def close(self):
        """Resets the stream (the EventSource went away); the connection stays."""
        self.client.reset_stream(self.state.id)


class H2Client:
    """An HTTP/2 client connection (hyper-h2). tls: an ssl.SSLContext offering "h2", or
    None for h2c with prior knowledge. settings: our SETTINGS ({h2.settings.SettingCodes:
    value}). auto_ack: acknowledge received DATA at once (True), only on the connection's
    window ("connection": streams' windows stay as the test leaves them), or never (False:
    the test opens the windows itself with ack())."""

    def __init__(self, port, tls=None, timeout=None, settings=None, auto_ack=True, rcvbuf=None,
                 validate=True):
        self.timeout = timeout or T(10)
        self.sock = connect(port, tls, self.timeout, rcvbuf)
        if tls is not None:
            proto = self.sock.selected_alpn_protocol()
            if proto != "h2":
                self.sock.close()
                raise AssertionError("ALPN chose %r, not h2" % proto)
        config = h2.config.H2Configuration(client_side=True, header_encoding=None,
                                           validate_outbound_headers=validate,
                                           validate_inbound_headers=validate,
                                           normalize_outbound_headers=validate)
        self.conn = h2.connection.H2Connection(config=config)
        if settings:
            self.conn.local_settings = h2.settings.Settings(client=True,
                                                            initial_values=settings)
        self.auto_ack = auto_ack
        self.streams = {}
        self.closed = False      # EOF or reset from the server
        self.goaway = None       # the ConnectionTerminated event
        self.remote_settings_seen = False
        self.pings = 0
        self.events = []         # every h2 event, in order
        self.conn.initiate_connection()
        self.flush()

    # -- plumbing
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def flush(self):
        data = self.conn.data_to_send()
        if data and not self.closed:
            try:
                self.sock.sendall(data)
            except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError):
                self.closed = True

    def pump(self, timeout=None):
        """Reads once and handles what arrived. Returns False once the connection is
        closed; raises socket.timeout when nothing came."""
        if self.closed:
            return False
        data = _recv(self.sock, timeout if timeout is not None else self.timeout)
        if not data:
            self.closed = True
            return False
        try:
            events = self.conn.receive_data(data)
        except h2.exceptions.ProtocolError as e:
            raise AssertionError("the hub broke the HTTP/2 protocol: %r" % e)
        for ev in events:
            self._handle(ev)
        self.flush()
        return True

    def _state(self, stream_id):
        st = self.streams.get(stream_id)
        if st is None:
            st = self.streams[stream_id] = StreamState(stream_id)
        return st

    def _handle(self, ev):
        self.events.append(ev)
        if isinstance(ev, h2.events.ResponseReceived):
            st = self._state(ev.stream_id)
            for k, v in ev.headers:
                k, v = k.decode("latin-1"), v.decode("latin-1")
                if k == ":status":
                    st.status = int(v)
                else:
                    st.headers.append((k, v))
        elif isinstance(ev, h2.events.DataReceived):
            st = self._state(ev.stream_id)
            if st.view is not None:
                st.view.buf += ev.data
            else:
                st.data += ev.data
            n = ev.flow_controlled_length
            if self.auto_ack == "connection" and n:
                self.conn.increment_flow_control_window(n)
            elif self.auto_ack and n:
                self.conn.acknowledge_received_data(n, ev.stream_id)
        elif isinstance(ev, h2.events.StreamEnded):
            self._state(ev.stream_id).ended = True
        elif isinstance(ev, h2.events.StreamReset):
            self._state(ev.stream_id).reset = ev.error_code
        elif isinstance(ev, h2.events.ConnectionTerminated):
            self.goaway = ev
        elif isinstance(ev, h2.events.RemoteSettingsChanged):
            self.remote_settings_seen = True
        elif isinstance(ev, h2.events.PingAckReceived):
            self.pings += 1

    def wait(self, predicate, timeout=None, what="condition"):
        deadline = time.monotonic() + (timeout or self.timeout)
        while not predicate():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError("timed out waiting for " + what)
            try:
                if not self.pump(remaining) and not predicate():
                    raise AssertionError("connection closed while waiting for %s (GOAWAY %r)"
                                         % (what, self.goaway))
            except socket.timeout:
                pass
        return True

    def wait_closed(self, timeout=None):
        """True if the server ends the connection (EOF or reset) within timeout."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while not self.closed:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            try:
                self.pump(remaining)
            except socket.timeout:
                return False
            except AssertionError:
                pass
        return True

    # -- requests
    def request(self, method, path, headers=(), body=b"", end_stream=True, authority=None,
                scheme="https"):
        """Sends a request; returns its stream id."""
        sid = self.conn.get_next_available_stream_id()
        hdrs = [(":method", method), (":scheme", scheme),
                (":authority", authority or "127.0.0.1"), (":path", path)]
        hdrs += [(k.lower(), v) for k, v in headers]
        if isinstance(body, str):
            body = body.encode()
        self.conn.send_headers(sid, hdrs, end_stream=end_stream and not body)
        self._state(sid)
        if body:
            self.send_body(sid, body, end_stream)
        self.flush()
        return sid

    def send_body(self, sid, body, end_stream=True):
        while body:
            self.wait(lambda: self.conn.local_flow_control_window(sid) > 0, what="send window")
            n = min(len(body), self.conn.local_flow_control_window(sid),
                    self.conn.max_outbound_frame_size)
            self.conn.send_data(sid, body[:n], end_stream=end_stream and n == len(body))
            body = body[n:]
            self.flush()

    def response(self, sid, timeout=None):
        """Waits for the whole response of stream sid; returns a qs.Response (version
        "HTTP/2")."""
        st = self.streams[sid]
        self.wait(lambda: st.ended or st.reset is not None, timeout,
                  "the response on stream %d" % sid)
        if st.reset is not None and st.status is None:
            raise AssertionError("stream %d reset with error %d" % (sid, st.reset))
        return qs.Response("HTTP/2", st.status, "", list(st.headers), bytes(st.data), b"")

    def get(self, path, headers=(), timeout=None):
        return self.response(self.request("GET", path, headers), timeout)

    def publish(self, topics, data=None, token="default", **kw):
        """POSTs an update on a new stream; returns the qs.Response."""
        if token == "default":
            token = qs.pub_token()
        body = qs.form_body(qs.publish_pairs(topics, data=data, **kw))
        hdrs = [("content-type", "application/x-www-form-urlencoded")]
        if token:
            hdrs.append(("authorization", "Bearer " + token))
        return self.response(self.request("POST", qs.HUB_PATH, hdrs, body))

    def open_stream(self, topics=(), token=None, headers=(), timeout=None, wait_preamble=True,
                    extra_query=()):
        """Subscribes on a new stream; returns a qs.SSEStream reading it (its close()
        resets the stream)."""
        hdrs = list(headers)
        if token:
            hdrs.append(("authorization", "Bearer " + token))
        sid = self.request("GET", qs.subscribe_target(topics, extra_query=extra_query), hdrs)
        st = self.streams[sid]
        self.wait(lambda: st.status is not None or st.reset is not None, timeout,
                  "the head of stream %d" % sid)
        if st.status != 200:
            self.wait(lambda: st.ended or st.reset is not None, timeout, "the error body")
            raise AssertionError("subscribe failed: %r %r %r" % (st.status, st.headers,
                                                                 bytes(st.data)))
        resp = qs.Response("HTTP/2", st.status, "", list(st.headers), b"", b"")
        s = qs.SSEStream(StreamView(self, st), resp)
        s.stream_id = sid
        if wait_preamble:
            s.wait_for(lambda: len(s.raw) >= 2, timeout, "the stream preamble")
            assert s.raw.startswith(b":\n"), s.raw[:100]
        return s

    def reset_stream(self, sid, code=CANCEL):
        if self.closed:
            return
        try:
            self.conn.reset_stream(sid, code)
        except h2.exceptions.StreamClosedError:
            return
        self.flush()

    def ack(self, sid, nbytes):
        """Opens the stream's and the connection's windows by nbytes."""
        self.conn.increment_flow_control_window(nbytes, stream_id=sid)
        self.conn.increment_flow_control_window(nbytes)
        self.flush()

    def ping(self, opaque=b"qs-ping!"):
        self.conn.ping(opaque)
        self.flush()


# --------------------------------------------------------------------------- RawH2

class RawH2:
    """A frame-level HTTP/2 peer. It sends the preface and an empty SETTINGS (unless
    preface=False), then whatever the test sends; read() decodes the server's frames
    (headers are HPACK-decoded into frame.decoded)."""

    def __init__(self, port, tls=None, timeout=None, preface=True, settings=None):
        self.timeout = timeout or T(10)
        self.sock = connect(port, tls, self.timeout)
        self.buf = b""
        self.frames = []
        self.closed = False
        self.reset = False       # the connection ended with a TCP reset, not a FIN
        self.goaway = None
        self.encoder = hpack.Encoder()
        self.decoder = hpack.Decoder()
        self.send_failed = False
        if preface:
            s = hf.SettingsFrame(0)
            for k, v in (settings or {}).items():
                s.settings[k] = v
            self.send(PREFACE + s.serialize())

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def send(self, data):
        """Sends frames (bytes, a frame, or a list of either); False when the server has
        closed the connection already."""
        if isinstance(data, hf.Frame):
            data = data.serialize()
        elif isinstance(data, (list, tuple)):
            data = b"".join(f.serialize() if isinstance(f, hf.Frame) else f for f in data)
        try:
            self.sock.settimeout(self.timeout)
            self.sock.sendall(data)
            return True
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError):
            self.send_failed = True
            return False

    def header_block(self, headers):
        return self.encoder.encode(headers)

    def headers_frame(self, sid, headers, end_stream=True, end_headers=True):
        f = hf.HeadersFrame(sid)
        f.data = self.header_block(headers)
        if end_stream:
            f.flags.add("END_STREAM")
        if end_headers:
            f.flags.add("END_HEADERS")
        return f

    def request_frame(self, sid, path="/healthz", method="GET", extra=(), end_stream=True):
        return self.headers_frame(sid, [(":method", method), (":scheme", "https"),
                                        (":authority", "127.0.0.1"), (":path", path)]
                                  + list(extra), end_stream)

    def read(self, timeout=None):
        """Reads what arrives within timeout; returns the new frames (possibly none).
        Sets closed at EOF."""
        if self.closed:
            return []
        try:
            self.sock.settimeout(max(timeout if timeout is not None else self.timeout, 0.001))
            data = self.sock.recv(65536)
        except (socket.timeout, ssl.SSLWantReadError):
            return []
        except (ConnectionResetError, BrokenPipeError):
            self.reset = True  # the server's kernel answered with a reset
            data = b""
        except (ssl.SSLEOFError, ssl.SSLZeroReturnError):
            data = b""
        except ssl.SSLError as e:
            if "timed out" in str(e):
                return []
            data = b""
        if not data:
            self.closed = True
        self.buf += data
        out = []
        pos = 0
        buf = memoryview(self.buf)
        while len(self.buf) - pos >= 9:
            try:
                frame, length = hf.Frame.parse_frame_header(buf[pos:pos + 9])
            except Exception:
                break  # not HTTP/2 (an HTTP/1.1 answer): left in buf
            if len(self.buf) - pos < 9 + length:
                break
            frame.parse_body(buf[pos + 9:pos + 9 + length])
            pos += 9 + length
            if isinstance(frame, (hf.HeadersFrame, hf.PushPromiseFrame)):
                try:
                    frame.decoded = self.decoder.decode(frame.data, raw=False)
                except Exception:
                    frame.decoded = None
            if isinstance(frame, hf.GoAwayFrame) and self.goaway is None:
                self.goaway = frame
            out.append(frame)
        buf.release()
        self.buf = self.buf[pos:]
        self.frames.extend(out)
        return out

    def drain(self, seconds):
        """Reads for up to `seconds` or until the connection closes."""
        deadline = time.monotonic() + seconds
        while not self.closed and time.monotonic() < deadline:
            self.read(min(0.2, max(deadline - time.monotonic(), 0.001)))

    def wait_for(self, predicate, timeout=None, what="frame"):
        """Reads until predicate(frame) holds for a frame received; returns that frame,
        or None if the connection closed or the time ran out."""
        for f in self.frames:
            if predicate(f):
                return f
        deadline = time.monotonic() + (timeout or self.timeout)
        while not self.closed and time.monotonic() < deadline:
            for f in self.read(min(0.5, max(deadline - time.monotonic(), 0.001))):
                if predicate(f):
                    return f
        return None

    def wait_closed(self, timeout=None):
        deadline = time.monotonic() + (timeout or self.timeout)
        while not self.closed and time.monotonic() < deadline:
            self.read(min(0.5, max(deadline - time.monotonic(), 0.001)))
        return self.closed

    def response_status(self, sid, timeout=None):
        """The :status of the response on stream sid (None when none came)."""
        f = self.wait_for(lambda f: isinstance(f, hf.HeadersFrame) and f.stream_id == sid,
                          timeout)
        if f is None or not f.decoded:
            return None
        return int(dict(f.decoded).get(":status"))

    def frames_of(self, cls, sid=None):
        return [f for f in self.frames if isinstance(f, cls) and (sid is None or
                                                                  f.stream_id == sid)]


# --------------------------------------------------------------------------- H2HTTPConn

def _parse_requests(data):
    """Complete HTTP/1.1 requests at the start of data: ([(method, target, headers, body)],
    rest). Bodies need Content-Length (no chunked requests)."""
    out = []
    while True:
        i = data.find(b"\r\n\r\n")
        if i < 0:
            return out, data
        lines = data[:i].decode("latin-1").split("\r\n")
        method, target, _version = lines[0].split(" ", 2)
        headers = []
        for line in lines[1:]:
            k, _, v = line.partition(":")
            headers.append((k.strip(), v.strip(" \t")))
        length = 0
        for k, v in headers:
            if k.lower() == "content-length":
                length = int(v)
            if k.lower() == "transfer-encoding":
                raise NotImplementedError("chunked request bodies are not carried over HTTP/2")
        if len(data) < i + 4 + length:
            return out, data
        out.append((method, target, headers, data[i + 4:i + 4 + length]))
        data = data[i + 4 + length:]


# Fields HTTP/2 does not carry (RFC 9113 §8.2.2), or carries as pseudo-headers.
_NOT_CARRIED = {"host", "connection", "keep-alive", "proxy-connection", "transfer-encoding",
                "upgrade", "te"}


class H2HTTPConn(qs.HTTPConn):
    """qs.HTTPConn over HTTP/2: send() takes HTTP/1.1 request bytes (one or more complete
    requests), each becomes a stream; responses come back in request order as HTTP/1.1
    bytes in `buf` (status line "HTTP/1.1", the fields as the hub sent them, a body
    without content-length chunked so its end is seen). A stream reset or the connection's
    end is EOF, as a dropped HTTP/1.1 connection would be."""

    def __init__(self, port, timeout=None, rcvbuf=None, tls=None):
        self.timeout = timeout or T(10)
        self.client = H2Client(port, tls=tls, timeout=self.timeout, rcvbuf=rcvbuf)
        self.sock = self.client.sock
        self.buf = b""
        self.eof = False
        self.pending = b""
        self.order = []       # stream ids whose responses are not fully in buf yet
        self.head_sent = set()
        self.methods = {}

    def close(self):
        self.client.close()

    def abort(self):
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                 b"\x01\x00\x00\x00\x00\x00\x00\x00")
        except OSError:
            pass
        self.close()

    def send(self, data):
        if isinstance(data, str):
            data = data.encode("latin-1")
        self.pending += data
        reqs, self.pending = _parse_requests(self.pending)
        for method, target, headers, body in reqs:
            authority = next((v for k, v in headers if k.lower() == "host"), "127.0.0.1")
            fields = [(k, v) for k, v in headers if k.lower() not in _NOT_CARRIED]
            sid = self.client.request(method, target, fields, body, authority=authority)
            self.order.append(sid)
            self.methods[sid] = method
        self._translate()

    def _translate(self):
        """Moves what the streams received, in request order, into buf as HTTP/1.1."""
        while self.order:
            sid = self.order[0]
            st = self.client.streams[sid]
            if st.status is None:
                if st.reset is not None or self.client.closed:
                    self.eof = True
                return
            chunked = (self.methods[sid] != "HEAD" and st.status not in (204, 304) and
                       not any(k == "content-length" for k, _ in st.headers))
            if sid not in self.head_sent:
                self.head_sent.add(sid)
                try:
                    reason = http.HTTPStatus(st.status).phrase
                except ValueError:
                    reason = ""
                head = "HTTP/1.1 %d %s\r\n" % (st.status, reason)
                for k, v in st.headers:
                    head += "%s: %s\r\n" % (k, v)
                if chunked:
                    head += "transfer-encoding: chunked\r\n"
                self.buf += head.encode("latin-1") + b"\r\n"
            if st.data:
                data = bytes(st.data)
                st.data = bytearray()
                self.buf += (b"%x\r\n%s\r\n" % (len(data), data)) if chunked else data
            if st.ended:
                self.order.pop(0)
                if chunked:
                    # An event stream is over: the hub closes an HTTP/1.1 connection after
                    # its last chunk, and so the emulation ends here too.
                    self.buf += b"0\r\n\r\n"
                    self.eof = True
                    return
                continue
            if st.reset is not None or self.client.closed:
                self.eof = True
            return
        if self.client.closed:
            self.eof = not self.order and self.client.closed

    def _recv(self, timeout):
        if self.eof:
            return False
        before = len(self.buf)
        try:
            ok = self.client.pump(timeout)
        except socket.timeout:
            self._translate()
            if len(self.buf) > before:
                return True
            raise
        self._translate()
        if not ok and len(self.buf) == before:
            self.eof = True
            return False
        return True
