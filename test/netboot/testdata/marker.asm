; marker.asm: a 512-byte boot sector for the netboot tests. Booted by iPXE's sanboot
; (drive in DL), it reads LBA 1 through INT 13h AH=42h (which iPXE serves over iSCSI),
; prints "MARKER:" and the NUL-terminated text found there to COM1, and ends qemu through
; isa-debug-exit (iobase 0xf4): exit status 33 after a marker, 35 when the read failed.
; Assemble: nasm -f bin -o marker.bin marker.asm
bits 16
org 0x7c00

start:
	cli
	xor ax, ax
	mov ds, ax
	mov es, ax
	mov ss, ax
	mov sp, 0x7c00
	sti
	mov [drive], dl
	mov si, dap
	mov ah, 0x42
	mov dl, [drive]
	int 0x13
	jc fail
	mov si, prefix
	call puts
	mov si, 0x7e00
	mov byte [0x7e00+511], 0	; never run past the sector
	call puts
	mov al, 10
	call putc
	mov al, 0x10
	out 0xf4, al
	hlt

fail:
	mov si, failmsg
	call puts
	mov al, 0x11
	out 0xf4, al
	hlt

; puts prints the NUL-terminated string at DS:SI.
puts:
	lodsb
	test al, al
	jz .done
	call putc
	jmp puts
.done:
	ret

; putc sends AL to COM1 once the transmitter is empty.
putc:
	push dx
	push ax
	mov dx, 0x3fd
.wait:
	in al, dx
	test al, 0x20
	jz .wait
	pop ax
	mov dx, 0x3f8
	out dx, al
	pop dx
	ret

drive:   db 0
prefix:  db 13, 10, "MARKER:", 0
failmsg: db 13, 10, "MARKER-READ-FAILED", 13, 10, 0

align 4
dap:
	db 0x10, 0	; size, reserved
	dw 1		; sectors
	dw 0x7e00, 0	; offset, segment
	dq 1		; LBA

times 510-($-$$) db 0
dw 0xaa55
