package main

// bench: the Go reference's own figures for vaccel-bench rpc, Go client against a
// conformance.Peer server:
//
//	go-peer bench SOCKET rtt COUNT            COUNT sequential empty Echo calls: µs each
//	go-peer bench SOCKET bulk COUNT BYTES     COUNT sequential Discard calls carrying BYTES: µs each
//	go-peer bench SOCKET pipelined COUNT N    COUNT empty Echo calls, N in flight: calls/s
//
// Prints one JSON line: {"samples":[…]} or {"rate":…}.

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/containerd/ttrpc"
)

func benchMode(path string, args []string) {
	if len(args) < 2 {
		fail("usage: go-peer bench SOCKET rtt|bulk|pipelined COUNT [BYTES|N]")
	}
	count, _ := strconv.Atoi(args[1])
	client := ttrpc.NewClient(dial(path))
	defer client.Close()
	bg := context.Background()
	call := func(method string, in []byte) {
		var out raw
		if err := client.Call(bg, peerService, method, rawOf(in), &out); err != nil {
			fail("%s: %v", method, err)
		}
	}
	emit := func(v any) {
		line, _ := json.Marshal(v)
		fmt.Println(string(line))
	}
	switch args[0] {
	case "rtt", "bulk":
		method, payload := "Echo", []byte(nil)
		if args[0] == "bulk" {
			size, _ := strconv.Atoi(args[2])
			method, payload = "Discard", make([]byte, size)
		}
		for i := 0; i < count; i++ { // warm-up, as long as the measurement
			call(method, payload)
		}
		samples := make([]float64, count)
		for i := range samples {
			start := time.Now()
			call(method, payload)
			samples[i] = float64(time.Since(start).Nanoseconds()) / 1e3
		}
		emit(map[string]any{"samples": samples})
	case "pipelined":
		window, _ := strconv.Atoi(args[2])
		var next int64
		var wg sync.WaitGroup
		start := time.Now()
		for w := 0; w < window; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for atomic.AddInt64(&next, 1) <= int64(count) {
					call("Echo", nil)
				}
			}()
		}
		wg.Wait()
		emit(map[string]any{"rate": float64(count) / time.Since(start).Seconds()})
	default:
		fail("unknown bench %q", args[0])
	}
}
