package wal

import (
	"encoding/binary"
	"hash/crc32"
)

type recType byte

const (
	recMetadata recType = 1
	recEntry    recType = 2
	recState    recType = 3
	recSnapshot recType = 4
)

const (
	headerSize = 8
	sectorSize = 512
	snapSize   = 16
)

// castagnoli is read-only after package initialization.
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// recordSize is the number of bytes a record with n payload bytes occupies,
// padding included.
func recordSize(n int) int { return (headerSize + 1 + n + 7) &^ 7 }

// appendRecord grows buf by one record of type t with room for n payload
// bytes. It returns the new buffer and the offset of the record in it; the
// caller fills buf[off+9:off+9+n] and then calls sealRecord.
func appendRecord(buf []byte, t recType, n int) ([]byte, int) {
	off := len(buf)
	size := recordSize(n)
	buf = grow(buf, size)
	rec := buf[off : off+size]
	binary.LittleEndian.PutUint32(rec[4:], uint32(1+n))
	rec[headerSize] = byte(t)
	clear(rec[headerSize+1+n:]) // padding: the buffer is reused
	return buf, off
}

// sealRecord computes the checksum of the record that starts at buf[off:].
func sealRecord(buf []byte, off int) {
	l := int(binary.LittleEndian.Uint32(buf[off+4:]))
	binary.LittleEndian.PutUint32(buf[off:], crc32.Checksum(buf[off+4:off+headerSize+l], castagnoli))
}

func grow(buf []byte, n int) []byte {
	if len(buf)+n <= cap(buf) {
		return buf[:len(buf)+n]
	}
	nb := make([]byte, len(buf)+n, 2*cap(buf)+n)
	copy(nb, buf)
	return nb
}

type decodeErr int

const (
	decOK        decodeErr = iota
	decZero                // header is all zero: the end of the records, or a torn write
	decShort               // the data ends inside the record
	decBadLength           // length zero with a non-zero header
	decCRC                 // checksum mismatch
)

func (d decodeErr) String() string {
	switch d {
	case decZero:
		return "zero record header"
	case decShort:
		return "file ends inside the record"
	case decBadLength:
		return "zero record length"
	case decCRC:
		return "crc mismatch"
	}
	return "ok"
}

// decodeRecord parses the record at b[off:]. On success payload aliases b and
// next is the offset of the following record (it may exceed len(b) when the
// padding is missing). end is where the record's bytes would end, even when
// decoding fails, so the caller can inspect what the record covers.
func decodeRecord(b []byte, off int) (t recType, payload []byte, next, end int, status decodeErr) {
	if len(b)-off < headerSize {
		return 0, nil, 0, len(b), decShort
	}
	crc := binary.LittleEndian.Uint32(b[off:])
	l := int(binary.LittleEndian.Uint32(b[off+4:]))
	if l == 0 {
		if crc == 0 {
			return 0, nil, 0, off + headerSize, decZero
		}
		return 0, nil, 0, off + headerSize, decBadLength
	}
	end = off + headerSize + l
	if end > len(b) || end < off {
		return 0, nil, 0, end, decShort
	}
	if crc32.Checksum(b[off+4:end], castagnoli) != crc {
		return 0, nil, 0, end, decCRC
	}
	return recType(b[off+headerSize]), b[off+headerSize+1 : end], (end + 7) &^ 7, end, decOK
}

// spansZeroSector reports whether one of the sector-aligned chunks that
// overlap b[start:end] is entirely zero. A chunk cut short by the end of b
// is judged on the bytes that exist.
func spansZeroSector(b []byte, start, end int) bool {
	end = min(end, len(b))
	for s := start &^ (sectorSize - 1); s < end; s += sectorSize {
		if allZero(b[s:min(s+sectorSize, len(b))]) {
			return true
		}
	}
	return false
}

func allZero(b []byte) bool { return lastNonZero(b) < 0 }

// lastNonZero returns the index of the last non-zero byte of b, or -1.
func lastNonZero(b []byte) int {
	i := len(b)
	for i > 0 && i%8 != 0 {
		i--
		if b[i] != 0 {
			return i
		}
	}
	for i >= 8 {
		if binary.LittleEndian.Uint64(b[i-8:i]) != 0 {
			for j := i - 1; ; j-- {
				if b[j] != 0 {
					return j
				}
			}
		}
		i -= 8
	}
	return -1
}
