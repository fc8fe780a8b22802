<#
.SYNOPSIS
  Install, enrol or remove the Safeguard monitor agent on a Windows PC.

.DESCRIPTION
  NOT YET RUN ON WINDOWS. Written and reviewed on Linux only; see docs/installer.md
  ("Windows") for what has and has not been exercised. Try it on one PC before Group Policy.

  What it does, mirroring `safeguard-install agent` on Linux:
    code     %ProgramFiles%\Safeguard\agent\venv-N (a Python venv with `pip install <src>[agent]`),
             `current.txt` names the venv in use
    state    %ProgramData%\Safeguard\agent, ACL: SYSTEM and Administrators only (no inheritance)
    service  "SafeguardAgent": a scheduled task at startup running as SYSTEM, restarted on
             failure (until the agent ships a pywin32 Windows service class; docs/installer.md)
    helper   "SafeguardKeyboardHelper": a scheduled task at every user's logon, as that user,
             windowless (pythonw.exe)
  Every step is undone if a later one fails. Running it twice changes nothing.

.EXAMPLE
  # Group Policy: Computer Configuration > Policies > Windows Settings > Scripts > Startup
  powershell.exe -ExecutionPolicy Bypass -File \\server\safeguard\Install-SafeguardAgent.ps1 `
    -Collector collector.school.local:50051 -CaFile \\server\safeguard\ca.pem `
    -TokenFile \\server\safeguard\room-token.txt -Source \\server\safeguard\safeguard_monitor-0.1.0-py3-none-any.whl
.EXAMPLE
  .\Install-SafeguardAgent.ps1 -Uninstall            # keeps the state (identity, outbox)
  .\Install-SafeguardAgent.ps1 -Uninstall -Purge     # removes the state too
#>
[CmdletBinding(DefaultParameterSetName = "Install")]
param(
  [Parameter(ParameterSetName = "Install", Mandatory)] [string] $Collector,
  [Parameter(ParameterSetName = "Install", Mandatory)] [string] $CaFile,
  [Parameter(ParameterSetName = "Install")] [string] $TokenFile,
  [Parameter(ParameterSetName = "Install", Mandatory)] [string] $Source,
  [Parameter(ParameterSetName = "Install")] [string] $Python = "py.exe",
  [Parameter(ParameterSetName = "Uninstall", Mandatory)] [switch] $Uninstall,
  [Parameter(ParameterSetName = "Uninstall")] [switch] $Purge,
  [string] $InstallDir = (Join-Path $env:ProgramFiles "Safeguard\agent"),
  [string] $StateDir = (Join-Path $env:ProgramData "Safeguard\agent")
)
$ErrorActionPreference = "Stop"
$ServiceTask = "SafeguardAgent"
$HelperTask = "SafeguardKeyboardHelper"
$undo = New-Object System.Collections.Stack

function Fail([string] $Message, [string] $Fix, [int] $Code = 1) {
  Write-Error "safeguard-install: error: $Message" -ErrorAction Continue
  if ($Fix) { Write-Host "safeguard-install: fix: $Fix" }
  while ($undo.Count -gt 0) { try { & $undo.Pop() } catch { Write-Warning "rollback: $_" } }
  exit $Code
}

$principal = New-Object Security.Principal.WindowsPrincipal([Security.Principal.WindowsIdentity]::GetCurrent())
if (-not $principal.IsInRole([Security.Principal.WindowsBuiltInRole]::Administrator)) {
  Fail "the installer must run as an administrator (or as SYSTEM from Group Policy); nothing changed" "run it from an elevated PowerShell"
}

if ($Uninstall) {
  foreach ($task in $ServiceTask, $HelperTask) {
    Stop-ScheduledTask -TaskName $task -ErrorAction SilentlyContinue
    Unregister-ScheduledTask -TaskName $task -Confirm:$false -ErrorAction SilentlyContinue
  }
  Remove-Item -Recurse -Force $InstallDir -ErrorAction SilentlyContinue
  if ($Purge) { Remove-Item -Recurse -Force $StateDir -ErrorAction SilentlyContinue; "removed the agent and its state" }
  else { "removed the agent; kept $StateDir (install again to use it, or -Uninstall -Purge)" }
  exit 0
}

if (Get-ScheduledTask -TaskName $ServiceTask -ErrorAction SilentlyContinue) {
  if (Test-Path (Join-Path $StateDir "identity.json")) {
    "the agent is already installed and enrolled here; nothing changed (the token was not used)"
    exit 0
  }
}

# Check everything we can before changing anything.
try { $caText = Get-Content -Raw $CaFile } catch { Fail "cannot read the CA file $CaFile" "copy the collector's /etc/safeguard/ca.pem to this PC or share" }
if ($caText -notmatch "-----BEGIN CERTIFICATE-----") { Fail "$CaFile is not a PEM certificate" "give -CaFile the collector's ca.pem" }
$hostPart, $portPart = $Collector -split ":(?=\d+$)"
if (-not $portPart) { Fail "-Collector $Collector is not HOST:PORT" "e.g. collector.school.local:50051" 2 }
$enrolled = Test-Path (Join-Path $StateDir "identity.json")
if (-not $enrolled) {
  if (-not $TokenFile) { Fail "an enrolment token is needed" "give -TokenFile (a file on the share, readable by Domain Computers)" }
  $probe = Test-NetConnection -ComputerName $hostPart -Port ([int]$portPart) -WarningAction SilentlyContinue
  if (-not $probe.TcpTestSucceeded) {
    Fail "cannot reach the collector at ${Collector}; nothing changed" "check the address and that the collector's firewall lets this PC in on port $portPart" 3
  }
}

# Code: a venv of its own with only the agent's dependencies.
$venv = Join-Path $InstallDir "venv-1"
if (-not (Test-Path (Join-Path $venv "Scripts\python.exe"))) {
  New-Item -ItemType Directory -Force $InstallDir | Out-Null
  $undo.Push({ Remove-Item -Recurse -Force $InstallDir -ErrorAction SilentlyContinue })
  & $Python -3 -m venv $venv
  if ($LASTEXITCODE -ne 0) { Fail "could not create a Python environment with $Python" "install Python 3.11+ for all users (python.org installer, 'py' launcher)" }
  & (Join-Path $venv "Scripts\python.exe") -m pip install --quiet --no-input "$Source[agent]"
  if ($LASTEXITCODE -ne 0) { Fail "pip could not install the agent from $Source" "check the wheel path and that this PC reaches the package index" }
  & (Join-Path $venv "Scripts\python.exe") -c "import duckdb" 2>$null
  if ($LASTEXITCODE -eq 0) { Fail "the agent environment can import duckdb, which only the collector needs" "give -Source the project wheel, not a collector environment" }
  Set-Content -Path (Join-Path $InstallDir "current.txt") -Value "venv-1"
}
$agentExe = Join-Path $venv "Scripts\safeguard-agent.exe"
$pythonw = Join-Path $venv "Scripts\pythonw.exe"

# State: SYSTEM and Administrators only, nothing inherited (so pupils cannot read the key).
if (-not (Test-Path $StateDir)) {
  New-Item -ItemType Directory -Force $StateDir | Out-Null
  $undo.Push({ Remove-Item -Recurse -Force $StateDir -ErrorAction SilentlyContinue })
}
& icacls.exe $StateDir /inheritance:r /grant:r "*S-1-5-18:(OI)(CI)F" "*S-1-5-32-544:(OI)(CI)F" | Out-Null
if ($LASTEXITCODE -ne 0) { Fail "could not restrict $StateDir to SYSTEM and Administrators" "" }

if (-not $enrolled) {
  Get-Content -Raw $TokenFile | & $agentExe enroll --state $StateDir --collector $Collector --ca $CaFile --token-file -
  if ($LASTEXITCODE -eq 3) { Fail "enrolment failed: the collector could not be reached; nothing changed" "check the address and firewall, then retry" 3 }
  if ($LASTEXITCODE -ne 0) { Fail "enrolment failed (see above); nothing changed" "make a new token on the collector (safeguard-install agent-line) and retry" }
}

# The service: at startup, as SYSTEM, restarted every minute on failure, no time limit.
$settings = New-ScheduledTaskSettingsSet -RestartCount 999 -RestartInterval (New-TimeSpan -Minutes 1) `
  -ExecutionTimeLimit ([TimeSpan]::Zero) -AllowStartIfOnBatteries -DontStopIfGoingOnBatteries -StartWhenAvailable
$action = New-ScheduledTaskAction -Execute $agentExe -Argument "run --state `"$StateDir`""
Register-ScheduledTask -TaskName $ServiceTask -Action $action -Trigger (New-ScheduledTaskTrigger -AtStartup) `
  -Principal (New-ScheduledTaskPrincipal -UserId "SYSTEM" -LogonType ServiceAccount -RunLevel Highest) `
  -Settings $settings -Description "Safeguard monitor agent (USB control, event shipping, policy)" -Force | Out-Null
$undo.Push({ Unregister-ScheduledTask -TaskName $ServiceTask -Confirm:$false -ErrorAction SilentlyContinue })

# The keyboard helper: at every logon, as the user who logs on (BUILTIN\Users), no window.
$helper = New-ScheduledTaskAction -Execute $pythonw `
  -Argument "-c `"import sys; from agent.cli import main; sys.exit(main())`" keyboard-helper --state `"$StateDir`""
Register-ScheduledTask -TaskName $HelperTask -Action $helper -Trigger (New-ScheduledTaskTrigger -AtLogOn) `
  -Principal (New-ScheduledTaskPrincipal -GroupId "S-1-5-32-545" -RunLevel Limited) `
  -Settings (New-ScheduledTaskSettingsSet -ExecutionTimeLimit ([TimeSpan]::Zero) -AllowStartIfOnBatteries) `
  -Description "Safeguard monitor keyboard helper (per logon)" -Force | Out-Null

Start-ScheduledTask -TaskName $ServiceTask
$undo.Clear()
"Safeguard agent installed: enrolled with $Collector; state in $StateDir (SYSTEM and Administrators only)"
