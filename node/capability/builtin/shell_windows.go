package builtin

import (
	"errors"
	"fmt"
	"os/exec"
	"syscall"
	"unsafe"

	"golang.org/x/sys/windows"
)

// startTree starts the command in a job object of its own, which its
// children and theirs join as they start: stopping the command terminates
// the job, the whole tree, and so does closing the job (release, once the
// command has exited; or the node's end, when the system closes its
// handles), since the job kills its processes when its last handle closes.
// Unlike on Unix, children still running when the command exits by itself
// are killed too: the call's processes end with the call.
//
// The command starts suspended and runs only once it is in the job, so it
// cannot start a child outside it first. The race accepted instead is a
// narrower one: finding the suspended process's thread to resume it takes a
// snapshot of the system's threads, and if that fails the command is killed
// and the call fails, rather than run outside a job.
func startTree(cmd *exec.Cmd) (release func(), err error) {
	job, err := windows.CreateJobObject(nil, nil)
	if err != nil {
		return nil, fmt.Errorf("creating a job object for the command: %w", err)
	}
	info := windows.JOBOBJECT_EXTENDED_LIMIT_INFORMATION{
		BasicLimitInformation: windows.JOBOBJECT_BASIC_LIMIT_INFORMATION{LimitFlags: windows.JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE},
	}
	if _, err := windows.SetInformationJobObject(job, windows.JobObjectExtendedLimitInformation,
		uintptr(unsafe.Pointer(&info)), uint32(unsafe.Sizeof(info))); err != nil {
		windows.CloseHandle(job)
		return nil, fmt.Errorf("making the command's job kill its processes when closed: %w", err)
	}
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.CreationFlags |= windows.CREATE_SUSPENDED
	cmd.Cancel = func() error {
		if err := windows.TerminateJobObject(job, 1); err != nil {
			return fmt.Errorf("terminating the command's job: %w", err)
		}
		return nil
	}
	if err := cmd.Start(); err != nil {
		windows.CloseHandle(job)
		return nil, err
	}
	if err := joinAndResume(job, uint32(cmd.Process.Pid)); err != nil {
		// Never run it outside the job.
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		windows.CloseHandle(job)
		return nil, err
	}
	return func() { windows.CloseHandle(job) }, nil
}

// joinAndResume puts the suspended process pid into job, then resumes its
// one thread.
func joinAndResume(job windows.Handle, pid uint32) error {
	p, err := windows.OpenProcess(windows.PROCESS_SET_QUOTA|windows.PROCESS_TERMINATE, false, pid)
	if err != nil {
		return fmt.Errorf("opening the command's process: %w", err)
	}
	defer windows.CloseHandle(p)
	if err := windows.AssignProcessToJobObject(job, p); err != nil {
		return fmt.Errorf("putting the command in its job: %w", err)
	}
	tid, err := firstThread(pid)
	if err != nil {
		return err
	}
	t, err := windows.OpenThread(windows.THREAD_SUSPEND_RESUME, false, tid)
	if err != nil {
		return fmt.Errorf("opening the command's thread: %w", err)
	}
	defer windows.CloseHandle(t)
	if _, err := windows.ResumeThread(t); err != nil {
		return fmt.Errorf("resuming the command: %w", err)
	}
	return nil
}

// firstThread finds the thread of process pid, which, created suspended,
// has only the one.
func firstThread(pid uint32) (uint32, error) {
	snap, err := windows.CreateToolhelp32Snapshot(windows.TH32CS_SNAPTHREAD, 0)
	if err != nil {
		return 0, fmt.Errorf("listing threads to resume the command: %w", err)
	}
	defer windows.CloseHandle(snap)
	te := windows.ThreadEntry32{Size: uint32(unsafe.Sizeof(windows.ThreadEntry32{}))}
	for err = windows.Thread32First(snap, &te); err == nil; err = windows.Thread32Next(snap, &te) {
		if te.OwnerProcessID == pid {
			return te.ThreadID, nil
		}
	}
	if errors.Is(err, windows.ERROR_NO_MORE_FILES) {
		return 0, fmt.Errorf("the command's process %d has no thread to resume", pid)
	}
	return 0, fmt.Errorf("listing threads to resume the command: %w", err)
}

// shellEnvNames name the little of the node's environment a command
// gets; many programs fail to start without SystemRoot.
var shellEnvNames = []string{"PATH", "HOME", "LANG", "USERPROFILE", "SystemRoot"}
