package httpproxy

// vSphere operation catalogue: a SOAP method, called on a managed object
// of one of the listed types, is an operation. A method not listed here,
// or called on an object of another type, maps to no operation and is
// denied: in particular everything that would hand out the service
// account's own session (AcquireCloneTicket, CloneSession,
// AcquireGenericServiceTicket, ImpersonateUser, LoginExtension*) or change
// users, roles and permissions.

// OpReadOnly is the operation class of read-only property collection and
// inventory lookup: a role granted only it can browse the inventory.
const OpReadOnly = "inventory.read"

type catalogEntry struct {
	op    string
	types []string // the _this types the method is mapped for
}

var (
	tVM       = []string{"VirtualMachine"}
	tSnapshot = []string{"VirtualMachineSnapshot"}
	tHost     = []string{"HostSystem"}
	tStorage  = []string{"HostStorageSystem"}
	tNetwork  = []string{"HostNetworkSystem"}
	tService  = []string{"HostServiceSystem"}
	tPC       = []string{"PropertyCollector"}
	tPF       = []string{"PropertyFilter"}
	tViews    = []string{"ContainerView", "ListView", "InventoryView"}
	tSearch   = []string{"SearchIndex"}
	tBrowser  = []string{"HostDatastoreBrowser"}
	tFiles    = []string{"FileManager"}
	tFolder   = []string{"Folder"}
	tTask     = []string{"Task"}
	tEntities = []string{"VirtualMachine", "Folder", "Datacenter", "ClusterComputeResource", "ComputeResource",
		"HostSystem", "ResourcePool", "VirtualApp", "Datastore", "Network", "DistributedVirtualPortgroup", "StoragePod"}
)

var vsphereCatalog = map[string]catalogEntry{
	// Read-only: property collection, views, lookups.
	"RetrieveProperties":           {OpReadOnly, tPC},
	"RetrievePropertiesEx":         {OpReadOnly, tPC},
	"ContinueRetrievePropertiesEx": {OpReadOnly, tPC},
	"CancelRetrievePropertiesEx":   {OpReadOnly, tPC},
	"WaitForUpdates":               {OpReadOnly, tPC},
	"WaitForUpdatesEx":             {OpReadOnly, tPC},
	"CheckForUpdates":              {OpReadOnly, tPC},
	"CancelWaitForUpdates":         {OpReadOnly, tPC},
	"CreateFilter":                 {OpReadOnly, tPC},
	"CreatePropertyCollector":      {OpReadOnly, tPC},
	"DestroyPropertyCollector":     {OpReadOnly, tPC},
	"DestroyPropertyFilter":        {OpReadOnly, tPF},
	"CreateContainerView":          {OpReadOnly, []string{"ViewManager"}},
	"CreateListView":               {OpReadOnly, []string{"ViewManager"}},
	"CreateInventoryView":          {OpReadOnly, []string{"ViewManager"}},
	"DestroyView":                  {OpReadOnly, tViews},
	"FindByInventoryPath":          {OpReadOnly, tSearch},
	"FindChild":                    {OpReadOnly, tSearch},
	"FindByUuid":                   {OpReadOnly, tSearch},
	"FindAllByUuid":                {OpReadOnly, tSearch},
	"FindByIp":                     {OpReadOnly, tSearch},
	"FindByDnsName":                {OpReadOnly, tSearch},
	"FindByDatastorePath":          {OpReadOnly, tSearch},
	"CurrentTime":                  {OpReadOnly, []string{"ServiceInstance"}},

	// Virtual machine power.
	"PowerOnVM_Task":  {"vm.power_on", tVM},
	"PowerOffVM_Task": {"vm.power_off", tVM},
	"ResetVM_Task":    {"vm.reset", tVM},
	"SuspendVM_Task":  {"vm.suspend", tVM},
	"ShutdownGuest":   {"vm.shutdown_guest", tVM},
	"RebootGuest":     {"vm.reboot_guest", tVM},
	"StandbyGuest":    {"vm.standby_guest", tVM},

	// Snapshots.
	"CreateSnapshot_Task":          {"vm.snapshot.create", tVM},
	"CreateSnapshotEx_Task":        {"vm.snapshot.create", tVM},
	"RevertToCurrentSnapshot_Task": {"vm.snapshot.revert", tVM},
	"RevertToSnapshot_Task":        {"vm.snapshot.revert", tSnapshot},
	"RemoveSnapshot_Task":          {"vm.snapshot.remove", tSnapshot},
	"RemoveAllSnapshots_Task":      {"vm.snapshot.remove", tVM},
	"RenameSnapshot":               {"vm.snapshot.rename", tSnapshot},
	"ConsolidateVMDisks_Task":      {"vm.snapshot.consolidate", tVM},

	// Configuration, lifecycle and placement.
	"ReconfigVM_Task":      {"vm.reconfigure", tVM},
	"UpgradeVM_Task":       {"vm.reconfigure", tVM},
	"CloneVM_Task":         {"vm.clone", tVM},
	"RelocateVM_Task":      {"vm.migrate", tVM},
	"MigrateVM_Task":       {"vm.migrate", tVM},
	"UnregisterVM":         {"vm.unregister", tVM},
	"CreateVM_Task":        {"vm.create", tFolder},
	"RegisterVM_Task":      {"vm.register", tFolder},
	"MarkAsTemplate":       {"vm.reconfigure", tVM},
	"MarkAsVirtualMachine": {"vm.reconfigure", tVM},
	"Rename_Task":          {"entity.rename", tEntities},
	"MoveIntoFolder_Task":  {"entity.move", tFolder},
	"CreateFolder":         {"folder.create", tFolder},

	// Console.
	"AcquireTicket":       {"vm.console", tVM},
	"AcquireMksTicket":    {"vm.console", tVM},
	"AcquireWebMksTicket": {"vm.console", tVM},

	// Datastores.
	"SearchDatastore_Task":           {"datastore.browse", tBrowser},
	"SearchDatastoreSubFolders_Task": {"datastore.browse", tBrowser},
	"DeleteDatastoreFile_Task":       {"datastore.file_manage", tFiles},
	"MoveDatastoreFile_Task":         {"datastore.file_manage", tFiles},
	"CopyDatastoreFile_Task":         {"datastore.file_manage", tFiles},
	"MakeDirectory":                  {"datastore.file_manage", tFiles},

	// Hosts: iSCSI and storage, network, services, maintenance, power.
	"UpdateSoftwareInternetScsiEnabled":          {"host.iscsi.configure", tStorage},
	"UpdateInternetScsiName":                     {"host.iscsi.configure", tStorage},
	"UpdateInternetScsiAlias":                    {"host.iscsi.configure", tStorage},
	"UpdateInternetScsiAuthenticationProperties": {"host.iscsi.configure", tStorage},
	"AddInternetScsiSendTargets":                 {"host.iscsi.configure", tStorage},
	"AddInternetScsiStaticTargets":               {"host.iscsi.configure", tStorage},
	"RemoveInternetScsiSendTargets":              {"host.iscsi.configure", tStorage},
	"RemoveInternetScsiStaticTargets":            {"host.iscsi.configure", tStorage},
	"RescanAllHba":                               {"host.storage.rescan", tStorage},
	"RescanHba":                                  {"host.storage.rescan", tStorage},
	"RescanVmfs":                                 {"host.storage.rescan", tStorage},
	"UpdateNetworkConfig":                        {"host.network.configure", tNetwork},
	"AddVirtualSwitch":                           {"host.network.configure", tNetwork},
	"RemoveVirtualSwitch":                        {"host.network.configure", tNetwork},
	"UpdateVirtualSwitch":                        {"host.network.configure", tNetwork},
	"AddPortGroup":                               {"host.network.configure", tNetwork},
	"RemovePortGroup":                            {"host.network.configure", tNetwork},
	"UpdatePortGroup":                            {"host.network.configure", tNetwork},
	"StartService":                               {"host.service.configure", tService},
	"StopService":                                {"host.service.configure", tService},
	"RestartService":                             {"host.service.configure", tService},
	"UpdateServicePolicy":                        {"host.service.configure", tService},
	"EnterMaintenanceMode_Task":                  {"host.maintenance", tHost},
	"ExitMaintenanceMode_Task":                   {"host.maintenance", tHost},
	"RebootHost_Task":                            {"host.power", tHost},
	"ShutdownHost_Task":                          {"host.power", tHost},

	// Tasks.
	"CancelTask": {"task.cancel", tTask},
}

// destroyOps maps Destroy_Task by its object's type: destroying a VM and
// destroying a folder or a datacenter are different grants.
var destroyOps = map[string]string{
	"VirtualMachine": "vm.destroy", "Folder": "folder.destroy", "Datacenter": "datacenter.destroy",
	"ClusterComputeResource": "cluster.destroy", "ResourcePool": "resource_pool.destroy",
	"HostSystem": "host.destroy", "Datastore": "datastore.destroy", "VirtualApp": "vapp.destroy",
}

// vsphereOperation maps a SOAP call to its operation; "" when the catalogue
// has none for it (the call is denied as unmapped).
func vsphereOperation(c soapCall) string {
	if c.NS != nsVim25 {
		return ""
	}
	if c.Method == "Destroy_Task" {
		return destroyOps[c.ThisType]
	}
	e, ok := vsphereCatalog[c.Method]
	if !ok {
		return ""
	}
	for _, t := range e.types {
		if t == c.ThisType {
			return e.op
		}
	}
	return ""
}
