;; The n-gram scanner's byte loop (see ngramStream.ts, which owns the semantics and the slow path):
;; ASCII words and digit runs are hashed, numbers masked, JSON/code escapes read as separators,
;; and each token is pushed into the rolling n-gram hash, whose key is checked against the
;; index's Bloom prefilter and then looked up in the index's table: each n-gram found is an event
;; for JavaScript (the matcher). Without a table every n-gram is an event (index building).
;; A word holding a non-ASCII byte or a \uXXXX escape stops the kernel (exit 1): JavaScript
;; normalises it (NFKC) and calls the kernel again after it.
;;
;; Assembled with wabt (scripts/buildWasm.mjs) into scanKernelWasm.ts, which is committed;
;; test/detectors/contaminationKernel.test.ts checks that the two agree.
;;
;; Memory layout (byte addresses; JavaScript writes tables and state, the kernel reads them):
;;   0     state: 0 h1, 4 count, 8 record, 12 lastEnd, 16 lastWasNumber, 20 runStart,
;;               24 lastRun, 28 position (out), 32 events (out), 36 blob runs (out)
;;   64    ring[8] token hashes          96  ringStart[8] token starts
;;   256   four byte-class tables (256 bytes each): plain, +lines, +escapes, +escapes+lines
;;   1280  separator escapes (1 = the byte after a backslash stands for a separator)
;;   1536  hex digits (1 = 0-9a-fA-F)
;;   1792  letter values (a-z and A-Z: 1-26, any other byte 0)
;;   4096  events, 32 bytes each: h1 h2 count token start line end slot (i32); the line is
;;         where the n-gram starts, or -1 - the line where it ends when it starts before the window
;;   then (addresses passed in) the prefilter, the table's first key halves (h1 per slot, 0 =
;;   empty), its second halves and its values (> 0: the n-gram is reported; else boilerplate or
;;   allowed), as the index holds them,
;;   the window of bytes to scan, the blob runs found (offset where a glued run of 64 bytes or more
;;   starts, and its line)
;; Positions in the state, in arguments and in events are offsets into the caller's buffer;
;; $win is the address of its byte 0 (it may lie below the window: only bytes at and after
;; `from - 1` are read).
(module
  (memory (export "memory") 1)

  ;; byte classes
  ;; SEP 0, LETTER 1, DIGIT 2, NEWLINE 3, HIGH 4 (a byte of a multi-byte character), BACKSLASH 5

  (func $isUnicodeEscape (param $i i32) (param $to i32) (result i32)
    ;; `\uXXXX` at address $i (a backslash), all within [$i, $to)
    (if (i32.ge_s (i32.add (local.get $i) (i32.const 5)) (local.get $to)) (then (return (i32.const 0))))
    (if (i32.ne (i32.load8_u offset=1 (local.get $i)) (i32.const 0x75)) (then (return (i32.const 0))))
    (i32.and
      (i32.and
        (i32.load8_u offset=1536 (i32.load8_u offset=2 (local.get $i)))
        (i32.load8_u offset=1536 (i32.load8_u offset=3 (local.get $i))))
      (i32.and
        (i32.load8_u offset=1536 (i32.load8_u offset=4 (local.get $i)))
        (i32.load8_u offset=1536 (i32.load8_u offset=5 (local.get $i))))))

  (func $fmix32 (param $h i32) (result i32)
    (local.set $h (i32.xor (local.get $h) (i32.shr_u (local.get $h) (i32.const 16))))
    (local.set $h (i32.mul (local.get $h) (i32.const 0x85ebca6b)))
    (local.set $h (i32.xor (local.get $h) (i32.shr_u (local.get $h) (i32.const 13))))
    (local.set $h (i32.mul (local.get $h) (i32.const 0xc2b2ae35)))
    (i32.xor (local.get $h) (i32.shr_u (local.get $h) (i32.const 16))))

  ;; Second half of the n-gram key: tokens oldest first from ring slot $oldest.
  (func $secondHash (param $oldest i32) (result i32)
    (local $h i32) (local $k i32)
    (loop $each
      (local.set $h
        (i32.add
          (i32.mul (local.get $h) (i32.const 0x85ebca77))
          (call $fmix32
            (i32.load offset=64
              (i32.shl (i32.and (i32.add (local.get $oldest) (local.get $k)) (i32.const 7)) (i32.const 2))))))
      (local.set $k (i32.add (local.get $k) (i32.const 1)))
      (br_if $each (i32.lt_u (local.get $k) (i32.const 8))))
    (local.get $h))

  ;; Scan buffer bytes [from, stop) (reading ahead up to `to`). $cls: address of the class table,
  ;; $filter/$shift: the prefilter, $table/$tableShift/$tableMask: the keys (address 0: no table,
  ;; report every token that passes the filter: index building with a filter that passes all),
  ;; $keys2/$vals: the table's second key halves and values; $lo: the window's first address.
  ;; Returns 0 when done, 1 at a word for the slow path (its start in the state's position),
  ;; 2 when the event buffer is full (resume from the state's position). The blob-run buffer at
  ;; $blobs must hold (to - from) / 64 + 2 runs (8 bytes each): each run is 64 bytes or more, only the first may
  ;; start before `from`.
  (func (export "scan")
    (param $win i32) (param $from i32) (param $stop i32) (param $to i32)
    (param $cls i32) (param $filter i32) (param $shift i32)
    (param $table i32) (param $tableShift i32) (param $tableMask i32) (param $keys2 i32) (param $vals i32) (param $lo i32)
    (param $eventsEnd i32) (param $blobs i32)
    (result i32)
    (local $i i32) (local $s i32) (local $b i32) (local $c i32) (local $t i32) (local $h i32)
    (local $h1 i32) (local $count i32) (local $record i32) (local $lastEnd i32)
    (local $lastWasNumber i32) (local $runStart i32) (local $lastRun i32)
    (local $ev i32) (local $blob i32) (local $p i32) (local $fk i32) (local $bits i32)
    (local $exit i32) (local $next i32) (local $n2 i32) (local $n3 i32)
    (local $slot i32) (local $key i32) (local $h2 i32) (local $h2Done i32) (local $a i32) (local $line i32)
    ;; load state, offsets to addresses
    (local.set $h1 (i32.load (i32.const 0)))
    (local.set $count (i32.load (i32.const 4)))
    (local.set $record (i32.load (i32.const 8)))
    (local.set $lastEnd (i32.add (local.get $win) (i32.load (i32.const 12))))
    (local.set $lastWasNumber (i32.load (i32.const 16)))
    (local.set $runStart (i32.add (local.get $win) (i32.load (i32.const 20))))
    (local.set $lastRun (i32.add (local.get $win) (i32.load (i32.const 24))))
    (local.set $i (i32.add (local.get $win) (local.get $from)))
    (local.set $stop (i32.add (local.get $win) (local.get $stop)))
    (local.set $to (i32.add (local.get $win) (local.get $to)))
    (local.set $ev (i32.const 4096))
    (local.set $blob (local.get $blobs))
    (block $out
      (loop $main
        (br_if $out (i32.ge_s (local.get $i) (local.get $stop)))
        (local.set $b (i32.load8_u (local.get $i)))
        (local.set $c (i32.load8_u (i32.add (local.get $cls) (local.get $b))))
        (local.set $s (local.get $i))
        (block $push
          (block $slow
            (if (i32.eq (local.get $c) (i32.const 1)) ;; LETTER
              (then
                ;; a new glued run unless right after a token, or after one `+` or `/`
                (if (i32.and
                      (i32.ne (local.get $s) (local.get $lastEnd))
                      (i32.or
                        (i32.ne (local.get $s) (i32.add (local.get $lastEnd) (i32.const 1)))
                        (i32.and
                          (i32.ne (i32.load8_u (i32.sub (local.get $s) (i32.const 1))) (i32.const 0x2b))
                          (i32.ne (i32.load8_u (i32.sub (local.get $s) (i32.const 1))) (i32.const 0x2f)))))
                  (then (local.set $runStart (local.get $s))))
                (local.set $h (i32.const 0))
                ;; the word hash: rotate by five, xor the letter's value (1-26, either case)
                (local.set $t (i32.and (local.get $b) (i32.const 31)))
                (loop $letters
                  (local.set $h (i32.xor (i32.rotl (local.get $h) (i32.const 5)) (local.get $t)))
                  (local.set $i (i32.add (local.get $i) (i32.const 1)))
                  (local.set $t (i32.load8_u offset=1792 (i32.load8_u (local.get $i))))
                  (br_if $letters (local.get $t)))
                (local.set $c (i32.load8_u (i32.add (local.get $cls) (i32.load8_u (local.get $i)))))
                (if (i32.and
                      (i32.ge_s (i32.sub (local.get $i) (local.get $runStart)) (i32.const 64))
                      (i32.ne (local.get $runStart) (local.get $lastRun)))
                  (then
                    (local.set $lastRun (local.get $runStart))
                    (i32.store (local.get $blob) (i32.sub (local.get $runStart) (local.get $win)))
                    (i32.store offset=4 (local.get $blob) (local.get $record))
                    (local.set $blob (i32.add (local.get $blob) (i32.const 8)))))
                (if (i32.ge_u (local.get $c) (i32.const 4))
                  (then
                    (br_if $slow (i32.eq (local.get $c) (i32.const 4)))
                    (br_if $slow (call $isUnicodeEscape (local.get $i) (local.get $to)))))
                (if (i32.and (local.get $lastWasNumber) (i32.eq (local.get $s) (local.get $lastEnd)))
                  (then
                    (local.set $lastEnd (local.get $i)) ;; letters glued to a number belong to it
                    (br $main)))
                (local.set $lastEnd (local.get $i))
                (local.set $lastWasNumber (i32.const 0))
                (local.set $t (local.get $h))
                (br $push)))
            (if (i32.eqz (local.get $c)) ;; SEP
              (then
                (local.set $i (i32.add (local.get $i) (i32.const 1)))
                (br $main)))
            (if (i32.eq (local.get $c) (i32.const 2)) ;; DIGIT
              (then
                (if (i32.and
                      (i32.ne (local.get $s) (local.get $lastEnd))
                      (i32.or
                        (i32.ne (local.get $s) (i32.add (local.get $lastEnd) (i32.const 1)))
                        (i32.and
                          (i32.ne (i32.load8_u (i32.sub (local.get $s) (i32.const 1))) (i32.const 0x2b))
                          (i32.ne (i32.load8_u (i32.sub (local.get $s) (i32.const 1))) (i32.const 0x2f)))))
                  (then (local.set $runStart (local.get $s))))
                (loop $digits
                  (local.set $i (i32.add (local.get $i) (i32.const 1)))
                  (br_if $digits
                    (i32.eq (i32.load8_u (i32.add (local.get $cls) (i32.load8_u (local.get $i)))) (i32.const 2))))
                (if (i32.and
                      (i32.ge_s (i32.sub (local.get $i) (local.get $runStart)) (i32.const 64))
                      (i32.ne (local.get $runStart) (local.get $lastRun)))
                  (then
                    (local.set $lastRun (local.get $runStart))
                    (i32.store (local.get $blob) (i32.sub (local.get $runStart) (local.get $win)))
                    (i32.store offset=4 (local.get $blob) (local.get $record))
                    (local.set $blob (i32.add (local.get $blob) (i32.const 8)))))
                (local.set $lastEnd (local.get $i))
                (br_if $main (local.get $lastWasNumber))
                (local.set $lastWasNumber (i32.const 1))
                (local.set $t (i32.const 0x5a5a5a5a)) ;; the masked-number token
                (br $push)))
            (if (i32.eq (local.get $c) (i32.const 3)) ;; NEWLINE
              (then
                (local.set $record (i32.add (local.get $record) (i32.const 1)))
                (local.set $i (i32.add (local.get $i) (i32.const 1)))
                (br $main)))
            (if (i32.eq (local.get $c) (i32.const 5)) ;; BACKSLASH, not a \uXXXX escape
              (then
                (if (i32.eqz (call $isUnicodeEscape (local.get $i) (local.get $to)))
                  (then
                    (local.set $lastEnd (i32.add (local.get $win) (i32.const -0x40000000)))
                    (local.set $next
                      (select
                        (i32.load8_u offset=1 (local.get $i))
                        (i32.const 0)
                        (i32.lt_s (i32.add (local.get $i) (i32.const 1)) (local.get $to))))
                    ;; `\\n` + a non-lowercase byte: a newline escaped twice (JSON in a JSON string)
                    (if (i32.and
                          (i32.eq (local.get $next) (i32.const 0x5c))
                          (i32.lt_s (i32.add (local.get $i) (i32.const 2)) (local.get $to)))
                      (then
                        (local.set $n2 (i32.load8_u offset=2 (local.get $i)))
                        (local.set $n3
                          (select
                            (i32.load8_u offset=3 (local.get $i))
                            (i32.const 0)
                            (i32.lt_s (i32.add (local.get $i) (i32.const 3)) (local.get $to))))
                        (if (i32.and
                              (i32.or
                                (i32.eq (local.get $n2) (i32.const 0x6e))
                                (i32.or
                                  (i32.eq (local.get $n2) (i32.const 0x74))
                                  (i32.eq (local.get $n2) (i32.const 0x72))))
                              (i32.eqz
                                (i32.and
                                  (i32.ge_u (local.get $n3) (i32.const 0x61))
                                  (i32.le_u (local.get $n3) (i32.const 0x7a)))))
                          (then
                            (local.set $i (i32.add (local.get $i) (i32.const 3)))
                            (br $main)))))
                    (local.set $i
                      (i32.add (local.get $i)
                        (select (i32.const 2) (i32.const 1) (i32.load8_u offset=1280 (local.get $next)))))
                    (br $main)))))
            ;; HIGH, or a \uXXXX escape: the slow path
          )
          ;; $slow: hand the word at $s to JavaScript
          (local.set $i (local.get $s))
          (local.set $exit (i32.const 1))
          (br $out))
        ;; $push: token $t, started at $s
        (local.set $p (i32.and (local.get $count) (i32.const 7)))
        (local.set $h1
          (i32.sub
            (i32.add (i32.mul (local.get $h1) (i32.const 0x9e3779b1)) (local.get $t))
            (i32.mul (i32.load offset=64 (i32.shl (local.get $p) (i32.const 2))) (i32.const 0x4b180981))))
        (i32.store offset=64 (i32.shl (local.get $p) (i32.const 2)) (local.get $t))
        (i32.store offset=96 (i32.shl (local.get $p) (i32.const 2)) (i32.sub (local.get $s) (local.get $win)))
        (local.set $count (i32.add (local.get $count) (i32.const 1)))
        (local.set $fk
          (i32.mul (i32.xor (local.get $h1) (i32.shr_u (local.get $h1) (i32.const 15))) (i32.const 0x165667b1)))
        (local.set $bits
          (i32.or
            (i32.shl (i32.const 1) (local.get $fk))
            (i32.shl (i32.const 1) (i32.shr_u (local.get $fk) (i32.const 5)))))
        (if (i32.eq
              (i32.and
                (i32.load
                  (i32.add (local.get $filter)
                    (i32.shl (i32.shr_u (local.get $fk) (local.get $shift)) (i32.const 2))))
                (local.get $bits))
              (local.get $bits))
          (then
            (block $report
              (if (local.get $table)
                (then
                  ;; look the n-gram up: open addressing over (h1, h2) pairs, 0 = empty slot
                  (local.set $slot
                    (i32.shr_u
                      (i32.mul (i32.xor (local.get $h1) (i32.shr_u (local.get $h1) (i32.const 13))) (i32.const 0x2c1b3c6d))
                      (local.get $tableShift)))
                  (local.set $h2 (i32.const 0))
                  (local.set $h2Done (i32.const 0))
                  (loop $probe
                    (local.set $key (i32.load (i32.add (local.get $table) (i32.shl (local.get $slot) (i32.const 2)))))
                    (br_if $main (i32.eqz (local.get $key)))
                    (if (i32.eq (local.get $key) (local.get $h1))
                      (then
                        (if (i32.eqz (local.get $h2Done))
                          (then
                            (local.set $h2 (call $secondHash (i32.and (local.get $count) (i32.const 7))))
                            (local.set $h2Done (i32.const 1))))
                        (if (i32.eq
                              (i32.load (i32.add (local.get $keys2) (i32.shl (local.get $slot) (i32.const 2))))
                              (local.get $h2))
                          (then
                            ;; found: reported when the n-gram is kept (not boilerplate or allowed)
                            (br_if $main
                              (i32.le_s
                                (i32.load (i32.add (local.get $vals) (i32.shl (local.get $slot) (i32.const 2))))
                                (i32.const 0)))
                            (br $report)))))
                    (local.set $slot (i32.and (i32.add (local.get $slot) (i32.const 1)) (local.get $tableMask)))
                    (br $probe))))
              ;; no table: report every n-gram (index building)
              (local.set $slot (i32.const -1))
              (local.set $h2 (call $secondHash (i32.and (local.get $count) (i32.const 7)))))
            ;; $report: the line where the n-gram starts (newlines between its start and here are
            ;; counted back), or, when it starts before the window, -1 - the line here
            (local.set $a (i32.add (local.get $win)
              (i32.load offset=96 (i32.shl (i32.and (local.get $count) (i32.const 7)) (i32.const 2)))))
            (local.set $line (local.get $record))
            (if (i32.ge_s (local.get $a) (local.get $lo))
              (then
                (block $counted
                  (loop $back
                    (br_if $counted (i32.ge_s (local.get $a) (local.get $i)))
                    (if (i32.eq (i32.load8_u (i32.add (local.get $cls) (i32.load8_u (local.get $a)))) (i32.const 3))
                      (then (local.set $line (i32.sub (local.get $line) (i32.const 1)))))
                    (local.set $a (i32.add (local.get $a) (i32.const 1)))
                    (br $back))))
              (else (local.set $line (i32.sub (i32.const -1) (local.get $record)))))
            (i32.store offset=0 (local.get $ev) (local.get $h1))
            (i32.store offset=4 (local.get $ev) (local.get $h2))
            (i32.store offset=8 (local.get $ev) (local.get $count))
            (i32.store offset=12 (local.get $ev) (local.get $t))
            (i32.store offset=16 (local.get $ev)
              (i32.load offset=96 (i32.shl (i32.and (local.get $count) (i32.const 7)) (i32.const 2))))
            (i32.store offset=20 (local.get $ev) (local.get $line))
            (i32.store offset=24 (local.get $ev) (i32.sub (local.get $i) (local.get $win)))
            (i32.store offset=28 (local.get $ev) (local.get $slot))
            (local.set $ev (i32.add (local.get $ev) (i32.const 32)))
            (if (i32.ge_u (local.get $ev) (local.get $eventsEnd))
              (then
                (local.set $exit (i32.const 2))
                (br $out)))))
        (br $main)))
    ;; save state, addresses to offsets
    (i32.store (i32.const 0) (local.get $h1))
    (i32.store (i32.const 4) (local.get $count))
    (i32.store (i32.const 8) (local.get $record))
    (i32.store (i32.const 12) (i32.sub (local.get $lastEnd) (local.get $win)))
    (i32.store (i32.const 16) (local.get $lastWasNumber))
    (i32.store (i32.const 20) (i32.sub (local.get $runStart) (local.get $win)))
    (i32.store (i32.const 24) (i32.sub (local.get $lastRun) (local.get $win)))
    (i32.store (i32.const 28) (i32.sub (local.get $i) (local.get $win)))
    (i32.store (i32.const 32) (i32.shr_u (i32.sub (local.get $ev) (i32.const 4096)) (i32.const 5)))
    (i32.store (i32.const 36) (i32.shr_u (i32.sub (local.get $blob) (local.get $blobs)) (i32.const 3)))
    (local.get $exit))
)
