package main

// `upstream`: a TCP agent that behaves on the wire like upstream vAccel 0.8's vaccel-rpc-agent
// (Rust ttrpc), for our client's sake:
//
//   - TCP with Nagle on (Go sets TCP_NODELAY by default; upstream's agent never does), and every
//     frame written as two send()s, its 10-byte header and then its body. With Nagle the body
//     waits for the peer's ACK of the header, which a delayed-ACK peer holds for up to 40 ms.
//   - Genop serves upstream's image ops 3–7 (docs/protocol.md §5) with fixed text, like upstream's
//     noop plugin, plus NOOP and BLAS_SGEMM (agent.go); ImageClassification likewise. Any other op
//     (our extension ops included) is refused as upstream refuses it: INTERNAL with a vaccel.Error
//     detail carrying EINVAL.
//   - `0.7` registers the service as vAccel 0.7.1 names it (`vaccel.AgentService`) instead of 0.8's.
//
//	go-peer upstream HOST:PORT [0.7]     prints "listening HOST:PORT" (the port chosen for :0)
//	go-peer upstream-client HOST:PORT N  the client side, writing the same way (upstreamClient)

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/containerd/ttrpc"
	anypb "github.com/golang/protobuf/ptypes/any"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
)

const (
	opImageClassify = 3
	opImageDepth    = 7
	// What upstream's noop plugin answers (plugins/noop/vaccel.c).
	dummyTag     = "This is a dummy classification tag!"
	dummyImgname = "This is a dummy out_imgname!"
)

// splitConn writes each ttRPC frame as two writes: its header, then its body (as upstream's
// agent does), whatever the Go channel's bufio writer hands over in one Write.
type splitConn struct {
	net.Conn
	mu     sync.Mutex
	header []byte
	left   int // body bytes of the current frame still to come
}

func (c *splitConn) Write(b []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for len(b) > 0 {
		if c.left == 0 {
			take := 10 - len(c.header)
			if take > len(b) {
				take = len(b)
			}
			c.header = append(c.header, b[:take]...)
			b, n = b[take:], n+take
			if len(c.header) == 10 {
				if _, err := c.Conn.Write(c.header); err != nil {
					return n, err
				}
				c.left = int(binary.BigEndian.Uint32(c.header[:4]))
				c.header = c.header[:0]
			}
			continue
		}
		take := c.left
		if take > len(b) {
			take = len(b)
		}
		if _, err := c.Conn.Write(b[:take]); err != nil {
			return n, err
		}
		b, n, c.left = b[take:], n+take, c.left-take
	}
	return n, nil
}

type upstreamListener struct{ net.Listener }

func (l upstreamListener) Accept() (net.Conn, error) {
	conn, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	if tcp, ok := conn.(*net.TCPConn); ok {
		_ = tcp.SetNoDelay(false) // Nagle on, as in upstream's agent
	}
	return &splitConn{Conn: conn}, nil
}

// upstreamError is how upstream's agent fails an op: INTERNAL, detail vaccel.Error{ffi_error}.
func upstreamError(errno uint64, message string) error {
	detail := protowire.AppendVarint(protowire.AppendTag(nil, 1, protowire.VarintType), 0)
	detail = protowire.AppendVarint(protowire.AppendTag(detail, 2, protowire.VarintType), errno)
	st := &spb.Status{Code: int32(codes.Internal), Message: message,
		Details: []*anypb.Any{{TypeUrl: "type.googleapis.com/vaccel.ProtoError", Value: detail}}}
	return status.ErrorProto(st)
}

// fixedText is text NUL-padded into a buffer of n bytes (keeping the last one NUL).
func fixedText(text string, n int) []byte {
	out := make([]byte, n)
	if n > 0 {
		copy(out[:n-1], text)
	}
	return out
}

func upstreamMethods() map[string]ttrpc.Method {
	methods := agentMethods()
	genop := methods["Genop"]
	methods["Genop"] = func(ctx context.Context, unmarshal func(interface{}) error) (interface{}, error) {
		var in raw
		if err := unmarshal(&in); err != nil {
			return nil, err
		}
		f, err := fields(in.b)
		if err != nil {
			return nil, upstreamError(22, "genop: bad request")
		}
		read, write := decodeArgs(f[2]), decodeArgs(f[3])
		if len(read) == 0 || len(read[0].buf) != 1 {
			return nil, upstreamError(22, "genop: no op")
		}
		op := read[0].buf[0]
		switch {
		case op >= opImageClassify && op <= opImageDepth:
			want := 1
			if op == opImageClassify {
				want = 2
			}
			if len(read) != 2 || len(write) != want || len(read[1].buf) == 0 {
				return nil, upstreamError(22, "image op: wrong args")
			}
			write[0] = arg{fixedText(dummyImgname, len(write[0].buf)), argUcharArray}
			if op == opImageClassify {
				write[1] = arg{fixedText(dummyTag, len(write[1].buf)), argUcharArray}
			}
			var out []byte
			for _, w := range write {
				out = appendArg(out, 1, w)
			}
			return rawOf(out), nil
		case op == opNoop || op == opSgemm:
			return genop(ctx, func(v interface{}) error { return v.(*raw).Unmarshal(in.b) })
		default:
			return nil, upstreamError(22, fmt.Sprintf("genop: unknown op %d", op))
		}
	}
	methods["ImageClassification"] = unary(func(_ context.Context, _ []byte) ([]byte, error) {
		return protowire.AppendBytes(protowire.AppendTag(nil, 1, protowire.BytesType), fixedText(dummyTag, 1024)), nil
	})
	return methods
}

func upstreamAgent(address string, version string) {
	listener, err := net.Listen("tcp", address)
	if err != nil {
		fail("listen: %v", err)
	}
	server, err := ttrpc.NewServer()
	if err != nil {
		fail("server: %v", err)
	}
	methods := upstreamMethods()
	if version == "0.7" {
		server.Register("vaccel.AgentService", methods)
	} else {
		server.Register("vaccel.sync.agent.AgentService", methods)
		server.Register("vaccel.asynchronous.agent.AgentService", methods)
	}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-stop
		_ = server.Close()
		os.Exit(0)
	}()
	fmt.Printf("listening %s\n", listener.Addr())
	if err := server.Serve(context.Background(), upstreamListener{listener}); err != nil && err != ttrpc.ErrServerClosed {
		fail("serve: %v", err)
	}
}

// upstreamClient is `go-peer upstream-client HOST:PORT COUNT`: a client that writes like
// upstream's (TCP, Nagle on, each request's header and body in two writes) making COUNT
// sequential 2×2 SGEMM genops on one session; prints {"samples":[µs per call, …]}.
func upstreamClient(address string, count int) {
	conn, err := net.Dial("tcp", address)
	if err != nil {
		fail("dial %s: %v", address, err)
	}
	_ = conn.(*net.TCPConn).SetNoDelay(false)
	agent := agentClient{ttrpc.NewClient(&splitConn{Conn: conn})}
	defer agent.c.Close()
	bg := context.Background()
	session, err := agent.createSession(bg)
	if err != nil {
		fail("%v", err)
	}
	read, write := sgemmArgs(2, 2, 2, []float32{1, 2, 3, 4}, []float32{1, 2, 3, 4})
	request := encodeGenop(session, read, write)
	samples := make([]float64, 0, count)
	for i := 0; i < count; i++ {
		start := time.Now()
		f, err := agent.call(bg, "Genop", request)
		if err != nil {
			fail("Genop: %v", err)
		}
		if out := decodeArgs(f[1]); len(out) != 1 || floats(out[0].buf)[0] != 7 {
			fail("Genop: wrong result %v", out)
		}
		samples = append(samples, float64(time.Since(start).Nanoseconds())/1e3)
	}
	line, _ := json.Marshal(map[string]any{"samples": samples})
	fmt.Println(string(line))
}
