package main

// Hand-built frames: legal envelopes with every optional field set to unusual values, which no
// ordinary client sends, and the statuses a conforming server must answer them with.

import (
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"net"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
)

type kv struct{ key, value string }

type envelope struct {
	service, method string
	payload         []byte
	timeoutNano     int64
	metadata        []kv
	unknownFirst    bool // an unknown field before everything else
	reversed        bool // fields in reverse order
	serviceTwice    bool // service sent twice: the last one counts
}

func (e envelope) encode() []byte {
	var fields [][]byte
	str := func(n protowire.Number, s string) []byte {
		return protowire.AppendString(protowire.AppendTag(nil, n, protowire.BytesType), s)
	}
	if e.serviceTwice {
		fields = append(fields, str(1, "conformance.Nobody"))
	}
	fields = append(fields, str(1, e.service), str(2, e.method))
	fields = append(fields, protowire.AppendBytes(protowire.AppendTag(nil, 3, protowire.BytesType), e.payload))
	if e.timeoutNano != 0 {
		fields = append(fields, protowire.AppendVarint(protowire.AppendTag(nil, 4, protowire.VarintType), uint64(e.timeoutNano)))
	}
	for _, m := range e.metadata {
		inner := append(str(1, m.key), str(2, m.value)...)
		fields = append(fields, protowire.AppendBytes(protowire.AppendTag(nil, 5, protowire.BytesType), inner))
	}
	if e.unknownFirst {
		unknown := protowire.AppendVarint(protowire.AppendTag(nil, 99, protowire.VarintType), 12345)
		unknown = protowire.AppendBytes(protowire.AppendTag(unknown, 100, protowire.BytesType), []byte("ignored"))
		unknown = protowire.AppendFixed32(protowire.AppendTag(unknown, 101, protowire.Fixed32Type), 7)
		unknown = protowire.AppendFixed64(protowire.AppendTag(unknown, 102, protowire.Fixed64Type), 8)
		fields = append([][]byte{unknown}, fields...)
	}
	if e.reversed {
		for i, j := 0, len(fields)-1; i < j; i, j = i+1, j-1 {
			fields[i], fields[j] = fields[j], fields[i]
		}
	}
	var out []byte
	for _, f := range fields {
		out = append(out, f...)
	}
	return out
}

func writeFrame(conn net.Conn, streamID uint32, typ, flags byte, payload []byte) error {
	header := make([]byte, 10)
	binary.BigEndian.PutUint32(header[0:], uint32(len(payload)))
	binary.BigEndian.PutUint32(header[4:], streamID)
	header[8], header[9] = typ, flags
	_, err := conn.Write(append(header, payload...))
	return err
}

type reply struct {
	streamID uint32
	code     int64
	message  string
	payload  []byte
}

func readReply(conn net.Conn) (reply, error) {
	header := make([]byte, 10)
	if _, err := io.ReadFull(conn, header); err != nil {
		return reply{}, err
	}
	body := make([]byte, binary.BigEndian.Uint32(header[0:]))
	if _, err := io.ReadFull(conn, body); err != nil {
		return reply{}, err
	}
	r := reply{streamID: binary.BigEndian.Uint32(header[4:])}
	for len(body) > 0 {
		num, typ, n := protowire.ConsumeTag(body)
		if n < 0 {
			return r, fmt.Errorf("bad response tag")
		}
		body = body[n:]
		m := protowire.ConsumeFieldValue(num, typ, body)
		if m < 0 {
			return r, fmt.Errorf("bad response field %d", num)
		}
		value := body[:m]
		body = body[m:]
		if typ != protowire.BytesType {
			continue
		}
		v, _ := protowire.ConsumeBytes(value)
		switch num {
		case 1: // status
			for len(v) > 0 {
				sn, st, k := protowire.ConsumeTag(v)
				v = v[k:]
				sm := protowire.ConsumeFieldValue(sn, st, v)
				if sn == 1 && st == protowire.VarintType {
					c, _ := protowire.ConsumeVarint(v)
					r.code = int64(int32(c))
				} else if sn == 2 && st == protowire.BytesType {
					s, _ := protowire.ConsumeBytes(v)
					r.message = string(s)
				}
				v = v[sm:]
			}
		case 2:
			r.payload = v
		}
	}
	return r, nil
}

// rawEnvelopes sends envelopes no ordinary client builds and checks the answers; the
// connection must go on after each.
func rawEnvelopes(path string) {
	conn := dial(path)
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	long := make([]kv, 200)
	for i := range long {
		long[i] = kv{fmt.Sprintf("k%03d", i), fmt.Sprintf("v%d", i)}
	}
	cases := []struct {
		name string
		env  envelope
		code int64
		echo bool // the reply must carry the payload back
	}{
		{"timeout_nano = 1 ns (expires at once)", envelope{method: "Sleep", payload: []byte("2000"), timeoutNano: 1}, 4, false},
		{"timeout_nano = -1 (already expired)", envelope{method: "Sleep", payload: []byte("2000"), timeoutNano: -1}, 4, false},
		{"timeout_nano = int64 min", envelope{method: "Echo", payload: []byte("x"), timeoutNano: math.MinInt64}, 4, false},
		{"timeout_nano = 1.5 ms, fractional", envelope{method: "Sleep", payload: []byte("2000"), timeoutNano: 1_500_001}, 4, false},
		{"timeout_nano = int64 max", envelope{method: "Echo", payload: []byte("max"), timeoutNano: math.MaxInt64}, 0, true},
		{"timeout_nano = 29999144167 (a Go client's 30 s)", envelope{method: "Echo", payload: []byte("go"), timeoutNano: 29999144167}, 0, true},
		{"200 metadata entries, empty and unicode keys", envelope{method: "Echo", payload: []byte("md"),
			metadata: append(long, kv{"", ""}, kv{"ключ", "☃"}, kv{"dup", "1"}, kv{"dup", "2"})}, 0, true},
		{"unknown fields of every wire type", envelope{method: "Echo", payload: []byte("unk"), unknownFirst: true}, 0, true},
		{"fields in reverse order", envelope{method: "Echo", payload: []byte("rev"), timeoutNano: 5e9, metadata: []kv{{"a", "b"}}, reversed: true}, 0, true},
		{"service field twice (last wins)", envelope{method: "Echo", payload: []byte("twice"), serviceTwice: true}, 0, true},
		{"empty payload field", envelope{method: "Echo", payload: []byte{}}, 0, false},
	}
	id := uint32(1)
	for _, c := range cases {
		c.env.service = peerService
		start := time.Now()
		if err := writeFrame(conn, id, 1, 0, c.env.encode()); err != nil {
			report("raw: "+c.name, false, "write: %v", err)
			return
		}
		r, err := readReply(conn)
		ok := err == nil && r.streamID == id && r.code == c.code && (!c.echo || string(r.payload) == string(c.env.payload))
		report("raw: "+c.name, ok, "stream %d code %d %q after %v, %v", r.streamID, r.code, r.message, time.Since(start).Round(time.Millisecond), err)
		id += 2
	}
	// An even stream id is not a client stream: INVALID_ARGUMENT, as containerd/ttrpc answers.
	_ = writeFrame(conn, 2, 1, 0, envelope{service: peerService, method: "Echo"}.encode())
	r, err := readReply(conn)
	report("raw: even stream id", err == nil && r.streamID == 2 && r.code == 3, "code %d %q, %v", r.code, r.message, err)
	// A frame type a server does not take is ignored; the next request is answered.
	_ = writeFrame(conn, id, 0x7f, 0, []byte("future"))
	_ = writeFrame(conn, id+2, 1, 0, envelope{service: peerService, method: "Echo", payload: []byte("after")}.encode())
	r, err = readReply(conn)
	report("raw: unknown frame type ignored", err == nil && r.streamID == id+2 && string(r.payload) == "after",
		"stream %d code %d, %v", r.streamID, r.code, err)
}
