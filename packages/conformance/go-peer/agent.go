package main

// The vAccel 0.8 agent service from Go: upstream message layouts (docs/protocol.md §3, §5),
// encoded by hand. `serve` answers CreateSession/Genop(BLAS_SGEMM, NOOP)/DestroySession as a
// minimal reference agent (the load benchmark's Go baseline); `agent` checks a real agent;
// `load` drives one with small SGEMMs.

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/containerd/ttrpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
)

const agentService = "vaccel.sync.agent.AgentService"

// Arg types and ops (docs/protocol.md §4).
const (
	argInt64        = 7
	argUint8        = 9
	argFloat32      = 17
	argFloat32Array = 18
	opNoop          = 0
	opSgemm         = 17
)

type arg struct {
	buf     []byte
	argType uint64
}

func appendArg(out []byte, field protowire.Number, a arg) []byte {
	var body []byte
	if len(a.buf) > 0 {
		body = protowire.AppendBytes(protowire.AppendTag(body, 1, protowire.BytesType), a.buf)
		body = protowire.AppendVarint(protowire.AppendTag(body, 2, protowire.VarintType), uint64(len(a.buf)))
	}
	if a.argType != 0 {
		body = protowire.AppendVarint(protowire.AppendTag(body, 3, protowire.VarintType), a.argType)
	}
	return protowire.AppendBytes(protowire.AppendTag(out, field, protowire.BytesType), body)
}

func encodeGenop(session int64, read, write []arg) []byte {
	out := protowire.AppendVarint(protowire.AppendTag(nil, 1, protowire.VarintType), uint64(session))
	for _, a := range read {
		out = appendArg(out, 2, a)
	}
	for _, a := range write {
		out = appendArg(out, 3, a)
	}
	return out
}

// fields decodes one message level: field number → values (varints as uint64, bytes as []byte).
func fields(b []byte) (map[protowire.Number][]any, error) {
	out := map[protowire.Number][]any{}
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return nil, fmt.Errorf("bad tag")
		}
		b = b[n:]
		switch typ {
		case protowire.VarintType:
			v, m := protowire.ConsumeVarint(b)
			if m < 0 {
				return nil, fmt.Errorf("bad varint")
			}
			out[num] = append(out[num], v)
			b = b[m:]
		case protowire.BytesType:
			v, m := protowire.ConsumeBytes(b)
			if m < 0 {
				return nil, fmt.Errorf("bad bytes")
			}
			out[num] = append(out[num], v)
			b = b[m:]
		default:
			m := protowire.ConsumeFieldValue(num, typ, b)
			if m < 0 {
				return nil, fmt.Errorf("bad field")
			}
			b = b[m:]
		}
	}
	return out, nil
}

func decodeArgs(values []any) []arg {
	var out []arg
	for _, v := range values {
		f, _ := fields(v.([]byte))
		a := arg{}
		if bufs := f[1]; len(bufs) > 0 {
			a.buf = bufs[len(bufs)-1].([]byte)
		}
		if t := f[3]; len(t) > 0 {
			a.argType = t[len(t)-1].(uint64)
		}
		out = append(out, a)
	}
	return out
}

func i64(v int64) arg {
	b := make([]byte, 8)
	binary.LittleEndian.PutUint64(b, uint64(v))
	return arg{b, argInt64}
}
func f32(v float32) arg {
	b := make([]byte, 4)
	binary.LittleEndian.PutUint32(b, math.Float32bits(v))
	return arg{b, argFloat32}
}
func f32s(v []float32) arg {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return arg{b, argFloat32Array}
}
func floats(b []byte) []float32 {
	out := make([]float32, len(b)/4)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return out
}
func getI64(a arg) int64 { return int64(binary.LittleEndian.Uint64(a.buf)) }

// sgemmArgs packs C = alpha·A·B + beta·C (row-major, upstream's read/write layout).
func sgemmArgs(m, n, k int, a, b []float32) (read, write []arg) {
	read = []arg{{[]byte{opSgemm}, argUint8}, i64(int64(m)), i64(int64(n)), i64(int64(k)), f32(1), f32s(a), i64(int64(k)),
		f32s(b), i64(int64(n)), f32(0), i64(int64(n))}
	return read, []arg{f32s(make([]float32, m*n))}
}

func agentMethods() map[string]ttrpc.Method {
	var next int64
	sessions := sync.Map{}
	return map[string]ttrpc.Method{
		"CreateSession": unary(func(_ context.Context, _ []byte) ([]byte, error) {
			id := atomic.AddInt64(&next, 1)
			sessions.Store(id, true)
			return protowire.AppendVarint(protowire.AppendTag(nil, 1, protowire.VarintType), uint64(id)), nil
		}),
		"DestroySession": unary(func(_ context.Context, in []byte) ([]byte, error) {
			f, _ := fields(in)
			if len(f[1]) > 0 {
				sessions.Delete(int64(f[1][0].(uint64)))
			}
			return nil, nil
		}),
		"Genop": unary(func(_ context.Context, in []byte) ([]byte, error) {
			f, err := fields(in)
			if err != nil {
				return nil, status.Errorf(codes.InvalidArgument, "genop: %v", err)
			}
			read, write := decodeArgs(f[2]), decodeArgs(f[3])
			if len(read) == 0 || len(read[0].buf) != 1 {
				return nil, status.Error(codes.InvalidArgument, "genop: no op")
			}
			switch read[0].buf[0] {
			case opNoop:
			case opSgemm:
				if len(read) != 11 || len(write) != 1 {
					return nil, status.Error(codes.InvalidArgument, "sgemm: wrong arg count")
				}
				m, n, k := int(getI64(read[1])), int(getI64(read[2])), int(getI64(read[3]))
				a, b, c := floats(read[5].buf), floats(read[7].buf), make([]float32, m*n)
				for i := 0; i < m; i++ {
					for p := 0; p < k; p++ {
						x := a[i*k+p]
						for j := 0; j < n; j++ {
							c[i*n+j] += x * b[p*n+j]
						}
					}
				}
				write[0] = f32s(c)
			default:
				return nil, status.Errorf(codes.Unimplemented, "op %d", read[0].buf[0])
			}
			var out []byte
			for _, w := range write {
				out = appendArg(out, 1, w)
			}
			return out, nil
		}),
	}
}

type agentClient struct{ c *ttrpc.Client }

func (a agentClient) call(ctx context.Context, method string, in []byte) (map[protowire.Number][]any, error) {
	var out raw
	if err := a.c.Call(ctx, agentService, method, rawOf(in), &out); err != nil {
		return nil, err
	}
	return fields(out.b)
}

func (a agentClient) createSession(ctx context.Context) (int64, error) {
	f, err := a.call(ctx, "CreateSession", protowire.AppendVarint(protowire.AppendTag(nil, 1, protowire.VarintType), 0))
	if err != nil || len(f[1]) == 0 {
		return 0, fmt.Errorf("CreateSession: %v", err)
	}
	return int64(f[1][0].(uint64)), nil
}

// agentChecks runs CreateSession/Genop/DestroySession against an agent at path.
func agentChecks(path string) {
	agent := agentClient{ttrpc.NewClient(dial(path))}
	defer agent.c.Close()
	bg := context.Background()
	session, err := agent.createSession(bg)
	report("agent: CreateSession", err == nil && session > 0, "session %d, %v", session, err)

	a := []float32{1, 2, 3, 4, 5, 6}    // 2×3
	b := []float32{7, 8, 9, 10, 11, 12} // 3×2
	read, write := sgemmArgs(2, 2, 3, a, b)
	ctx, cancel := context.WithTimeout(bg, 10*time.Second)
	f, err := agent.call(ctx, "Genop", encodeGenop(session, read, write))
	cancel()
	var c []float32
	if err == nil {
		if out := decodeArgs(f[1]); len(out) == 1 {
			c = floats(out[0].buf)
		}
	}
	want := []float32{58, 64, 139, 154}
	same := len(c) == 4
	for i := range c {
		same = same && c[i] == want[i]
	}
	report("agent: Genop BLAS_SGEMM under a deadline", err == nil && same, "C = %v, %v", c, err)

	read[0].buf = []byte{99}
	_, err = agent.call(bg, "Genop", encodeGenop(session, read, write))
	report("agent: Genop with an unknown op is refused with a status", err != nil && codeOf(err) != codes.OK, "%v", err)

	_, err = agent.call(bg, "Genop", encodeGenop(session+1000, []arg{{[]byte{opSgemm}, argUint8}}, nil))
	report("agent: Genop on an unknown session", codeOf(err) == codes.NotFound, "%v", err)

	_, err = agent.call(bg, "DestroySession", protowire.AppendVarint(protowire.AppendTag(nil, 1, protowire.VarintType), uint64(session)))
	report("agent: DestroySession", err == nil, "%v", err)
	_, err = agent.call(bg, "DestroySession", protowire.AppendVarint(protowire.AppendTag(nil, 1, protowire.VarintType), uint64(session)))
	report("agent: DestroySession twice is NOT_FOUND", codeOf(err) == codes.NotFound, "%v", err)
}

// load runs conns connections × inflight goroutines of 8×8 SGEMM genops for seconds and prints
// {"calls":…,"seconds":…,"rate":…,"errors":…}.
func load(path string, conns, inflight int, seconds float64) {
	a, b := make([]float32, 64), make([]float32, 64)
	for i := range a {
		a[i], b[i] = float32(i%7), float32(i%5)
	}
	var calls, errors int64
	var wg sync.WaitGroup
	deadline := time.Now().Add(time.Duration(seconds * float64(time.Second)))
	start := time.Now()
	for i := 0; i < conns; i++ {
		agent := agentClient{ttrpc.NewClient(dial(path))}
		session, err := agent.createSession(context.Background())
		if err != nil {
			fail("%v", err)
		}
		read, write := sgemmArgs(8, 8, 8, a, b)
		request := encodeGenop(session, read, write)
		for j := 0; j < inflight; j++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for time.Now().Before(deadline) {
					// Every call carries a deadline, as a Go client's context usually does.
					ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
					if _, err := agent.call(ctx, "Genop", request); err != nil {
						atomic.AddInt64(&errors, 1)
					} else {
						atomic.AddInt64(&calls, 1)
					}
					cancel()
				}
			}()
		}
	}
	wg.Wait()
	elapsed := time.Since(start).Seconds()
	line, _ := json.Marshal(map[string]any{"calls": calls, "seconds": elapsed, "rate": float64(calls) / elapsed, "errors": errors})
	fmt.Println(string(line))
}
