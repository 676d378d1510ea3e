package main

// `ops`: every upstream op vaccel-ts serves, sent from Go exactly as upstream vAccel 0.8 lays it
// out (docs/protocol.md §3, §5): image detect/pose/segment genops, MINMAX, the FPGA ops,
// EXEC_WITH_RESOURCE on a LIB resource registered as a blob, and GetProfiler.

import (
	"bytes"
	"context"
	"encoding/binary"
	"math"
	"os"
	"time"

	"github.com/containerd/ttrpc"
	"google.golang.org/protobuf/encoding/protowire"
)

const (
	argInt32       = 5
	argInt32Array  = 6
	argFloat64     = 19
	argFloat64Arr  = 20
	argUcharArray  = 26
	argString      = 27
	argBuffer      = 28
	opExecWithRes  = 2
	opImageDetect  = 4
	opImageSegment = 5
	opImagePose    = 6
	opArrayCopy    = 18
	opMmult        = 19
	opParallel     = 20
	opVectorAdd    = 21
	opMinmax       = 22
)

func i32(v int32) arg {
	b := make([]byte, 4)
	binary.LittleEndian.PutUint32(b, uint32(v))
	return arg{b, argInt32}
}
func f64s(v []float64, t uint64) arg {
	b := make([]byte, 8*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint64(b[8*i:], math.Float64bits(x))
	}
	return arg{b, t}
}
func doubles(b []byte) []float64 {
	out := make([]float64, len(b)/8)
	for i := range out {
		out[i] = math.Float64frombits(binary.LittleEndian.Uint64(b[8*i:]))
	}
	return out
}
func op(n byte) arg { return arg{[]byte{n}, argUint8} }
func cstring(s string) arg { return arg{append([]byte(s), 0), argString} }

func equalF32(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// genop sends one genop and returns the write args the agent answered with.
func (a agentClient) genop(session int64, read, write []arg) ([]arg, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	f, err := a.call(ctx, "Genop", encodeGenop(session, read, write))
	if err != nil {
		return nil, err
	}
	return decodeArgs(f[1]), nil
}

func opsChecks(path, image, module string) {
	agent := agentClient{ttrpc.NewClient(dial(path))}
	defer agent.c.Close()
	session, err := agent.createSession(context.Background())
	if err != nil {
		fail("%v", err)
	}
	photo, err := os.ReadFile(image)
	if err != nil {
		fail("read %s: %v", image, err)
	}
	text := func(out []arg) string {
		if len(out) != 1 {
			return ""
		}
		return string(bytes.TrimRight(out[0].buf, "\x00"))
	}
	for _, c := range []struct {
		name string
		op   byte
		want string
	}{{"IMAGE_DETECT", opImageDetect, "person "}, {"IMAGE_POSE", opImagePose, "pose "}, {"IMAGE_SEGMENT", opImageSegment, "person "}} {
		out, err := agent.genop(session, []arg{op(c.op), {photo, argBuffer}}, []arg{{make([]byte, 512), argUcharArray}})
		report("ops: Genop "+c.name+" (image BUFFER → out_imgname UCHAR_ARRAY)", err == nil && bytes.Contains([]byte(text(out)), []byte(c.want)), "%q %v", text(out), err)
	}

	out, err := agent.genop(session,
		[]arg{op(opMinmax), f64s([]float64{4, -7, 12.5, 3}, argFloat64Arr), i32(4), i32(0), i32(10)},
		[]arg{f64s(make([]float64, 4), argFloat64Arr), f64s([]float64{0}, argFloat64), f64s([]float64{0}, argFloat64)})
	ok := err == nil && len(out) == 3
	var clamped, lo, hi []float64
	if ok {
		clamped, lo, hi = doubles(out[0].buf), doubles(out[1].buf), doubles(out[2].buf)
		ok = len(clamped) == 4 && clamped[1] == 0 && clamped[2] == 10 && lo[0] == 0 && hi[0] == 10
	}
	report("ops: Genop MINMAX", ok, "out %v min %v max %v %v", clamped, lo, hi, err)

	ints := make([]byte, 12)
	for i, v := range []int32{7, -1, 3} {
		binary.LittleEndian.PutUint32(ints[4*i:], uint32(v))
	}
	out, err = agent.genop(session, []arg{op(opArrayCopy), {ints, argInt32Array}}, []arg{{make([]byte, 12), argInt32Array}})
	report("ops: Genop FPGA_ARRAYCOPY", err == nil && len(out) == 1 && bytes.Equal(out[0].buf, ints), "%v", err)
	out, err = agent.genop(session, []arg{op(opVectorAdd), f32s([]float32{1, 2}), f32s([]float32{10, 20})}, []arg{f32s(make([]float32, 2))})
	report("ops: Genop FPGA_VECTORADD", err == nil && len(out) == 1 && equalF32(floats(out[0].buf), []float32{11, 22}), "%v", err)
	out, err = agent.genop(session, []arg{op(opParallel), f32s([]float32{1, 2}), f32s([]float32{10, 20})}, []arg{f32s(make([]float32, 2)), f32s(make([]float32, 2))})
	report("ops: Genop FPGA_PARALLEL", err == nil && len(out) == 2 && equalF32(floats(out[0].buf), []float32{11, 22}) && equalF32(floats(out[1].buf), []float32{10, 40}), "%v", err)
	out, err = agent.genop(session, []arg{op(opMmult), f32s([]float32{1, 2, 3, 4}), f32s([]float32{5, 6, 7, 8})}, []arg{f32s(make([]float32, 4))})
	report("ops: Genop FPGA_MMULT", err == nil && len(out) == 1 && equalF32(floats(out[0].buf), []float32{19, 22, 43, 50}), "%v", err)
	_, err = agent.genop(session, []arg{op(opMinmax), f64s([]float64{1}, argFloat64Arr)}, nil)
	report("ops: Genop MINMAX with missing args is refused with a status", err != nil, "%v", err)

	source, err := os.ReadFile(module)
	if err != nil {
		fail("read %s: %v", module, err)
	}
	// RegisterResource{blobs: [Blob{type BUFFER, name, data, size}], resource_type LIB, session_id}.
	blob := protowire.AppendVarint(protowire.AppendTag(nil, 1, protowire.VarintType), 1)
	blob = protowire.AppendBytes(protowire.AppendTag(blob, 2, protowire.BytesType), []byte("negate.mjs"))
	blob = protowire.AppendBytes(protowire.AppendTag(blob, 3, protowire.BytesType), source)
	blob = protowire.AppendVarint(protowire.AppendTag(blob, 4, protowire.VarintType), uint64(len(source)))
	register := protowire.AppendBytes(protowire.AppendTag(nil, 2, protowire.BytesType), blob)
	register = protowire.AppendVarint(protowire.AppendTag(register, 5, protowire.VarintType), uint64(session))
	f, err := agent.call(context.Background(), "RegisterResource", register)
	var resource int64
	if err == nil && len(f[1]) > 0 {
		resource = int64(f[1][0].(uint64))
	}
	report("ops: RegisterResource (LIB, one blob)", err == nil && resource > 0, "id %d %v", resource, err)
	out, err = agent.genop(session, []arg{op(opExecWithRes), i64(resource), cstring("negate"), {[]byte{0, 1, 200}, 0}}, []arg{{make([]byte, 3), 0}})
	report("ops: Genop EXEC_WITH_RESOURCE runs the allowlisted module", err == nil && len(out) == 1 && bytes.Equal(out[0].buf, []byte{255, 254, 55}), "%v", err)
	_, err = agent.genop(session, []arg{op(opExecWithRes), i64(resource), cstring("secret")}, nil)
	report("ops: Genop EXEC_WITH_RESOURCE of a function off the allowlist is refused", err != nil, "%v", err)

	f, err = agent.call(context.Background(), "GetProfiler", protowire.AppendVarint(protowire.AppendTag(nil, 1, protowire.VarintType), uint64(session)))
	found := false
	if err == nil && len(f[1]) > 0 {
		profiler, _ := fields(f[1][0].([]byte))
		for _, entry := range profiler[2] {
			e, _ := fields(entry.([]byte))
			if len(e[1]) > 0 && string(e[1][0].([]byte)) == "vaccel_minmax_op" {
				found = true
			}
		}
	}
	report("ops: GetProfiler lists the session's regions", found, "%v", err)
}
