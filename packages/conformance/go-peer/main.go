// Command go-peer is the reference side of vaccel-ts's ttRPC conformance suite: a program built
// on containerd/ttrpc (the Go reference implementation, as Debian packages it) that serves our
// client and drives our server. Built by the tests with Debian's Go:
//
//	GO111MODULE=off GOPATH=/usr/share/gocode go build -o go-peer .
//
// Modes (every address is a unix socket path, except upstream's TCP one):
//
//	go-peer serve SOCKET             serve conformance.Peer and a minimal vAccel agent (SGEMM genops)
//	go-peer drive SOCKET             run the client checks against a conformance.Peer server
//	go-peer agent SOCKET             run vAccel agent checks (CreateSession/Genop/DestroySession)
//	go-peer ops SOCKET IMAGE MODULE  every upstream op vaccel-ts serves, in upstream's layouts (ops.go)
//	go-peer load SOCKET C N SECONDS  C connections × N calls in flight of small SGEMM genops
//	go-peer bench SOCKET …           the Go client's own latency and throughput (bench.go)
//	go-peer upstream HOST:PORT [0.7] a TCP agent that writes like upstream's (upstream.go)
//	go-peer upstream-client HOST:PORT N  N small SGEMMs from a client that writes like upstream's
//
// drive and agent print one JSON line per check: {"name":…,"ok":…,"detail":…}.
// Messages are encoded by hand with protowire: no generated code is needed.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/signal"
	"strconv"
	"syscall"

	"github.com/containerd/ttrpc"
)

// raw carries already-encoded protobuf bytes through ttrpc's gogo codec, which calls
// Marshal/Unmarshal on messages that have them.
type raw struct{ b []byte }

func (r *raw) Reset()                   { r.b = nil }
func (r *raw) String() string           { return fmt.Sprintf("raw(%d bytes)", len(r.b)) }
func (r *raw) ProtoMessage()            {}
func (r *raw) Marshal() ([]byte, error) { return r.b, nil }
func (r *raw) Unmarshal(b []byte) error { r.b = append([]byte(nil), b...); return nil }
func rawOf(b []byte) *raw               { return &raw{b: b} }
func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "go-peer: "+format+"\n", args...)
	os.Exit(2)
}
func dial(path string) net.Conn {
	conn, err := net.Dial("unix", path)
	if err != nil {
		fail("dial %s: %v", path, err)
	}
	return conn
}

type check struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail,omitempty"`
}

func report(name string, ok bool, format string, args ...any) {
	line, _ := json.Marshal(check{Name: name, OK: ok, Detail: fmt.Sprintf(format, args...)})
	fmt.Println(string(line))
}

func main() {
	if len(os.Args) < 3 {
		fail("usage: go-peer serve|drive|agent|load SOCKET [...]")
	}
	path := os.Args[2]
	switch os.Args[1] {
	case "serve":
		serve(path)
	case "drive":
		drive(path)
	case "agent":
		agentChecks(path)
	case "ops":
		if len(os.Args) != 5 {
			fail("usage: go-peer ops SOCKET IMAGE MODULE")
		}
		opsChecks(path, os.Args[3], os.Args[4])
	case "bench":
		benchMode(path, os.Args[3:])
	case "upstream":
		version := ""
		if len(os.Args) > 3 {
			version = os.Args[3]
		}
		upstreamAgent(path, version)
	case "upstream-client":
		count := 100
		if len(os.Args) > 3 {
			count, _ = strconv.Atoi(os.Args[3])
		}
		upstreamClient(path, count)
	case "load":
		if len(os.Args) != 6 {
			fail("usage: go-peer load SOCKET CONNECTIONS INFLIGHT SECONDS")
		}
		conns, _ := strconv.Atoi(os.Args[3])
		inflight, _ := strconv.Atoi(os.Args[4])
		seconds, _ := strconv.ParseFloat(os.Args[5], 64)
		load(path, conns, inflight, seconds)
	default:
		fail("unknown mode %q", os.Args[1])
	}
}

func serve(path string) {
	_ = os.Remove(path)
	listener, err := net.Listen("unix", path)
	if err != nil {
		fail("listen: %v", err)
	}
	server, err := ttrpc.NewServer()
	if err != nil {
		fail("server: %v", err)
	}
	server.Register(peerService, peerMethods())
	agent := agentMethods()
	server.Register("vaccel.sync.agent.AgentService", agent)
	server.Register("vaccel.asynchronous.agent.AgentService", agent)
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-stop
		_ = server.Close()
		_ = os.Remove(path)
		os.Exit(0)
	}()
	fmt.Println("listening")
	if err := server.Serve(context.Background(), listener); err != nil && err != ttrpc.ErrServerClosed {
		fail("serve: %v", err)
	}
}
