// Opt-in Durable Task Scheduler backend (useDurableTaskScheduler = true in main.bicep): a scheduler, the
// task hub the app uses, and Durable Task Data Contributor on the scheduler for the app identity and the
// deploying user. The app reaches it through DURABLE_TASK_SCHEDULER_CONNECTION_STRING (see api.bicep) and
// infra/host.dts.json.
param schedulerName string
param taskHubName string
param location string
param tags object = {}
param identityPrincipalId string
param userPrincipalId string = ''
@allowed([
  'User'
  'ServicePrincipal'
])
param userPrincipalType string = 'User'
@allowed([
  'Consumption'
  'Dedicated'
])
param skuName string = 'Consumption'
@description('IP ranges allowed to call the scheduler. An empty list denies all traffic; callers still need Entra ID + RBAC.')
param ipAllowlist array = [
  '0.0.0.0/0'
]

var durableTaskDataContributor = '0ad04412-c4d5-4796-b79c-f76d14c8d402'

resource scheduler 'Microsoft.DurableTask/schedulers@2025-11-01' = {
  name: schedulerName
  location: location
  tags: tags
  properties: {
    ipAllowlist: ipAllowlist
    sku: {
      name: skuName
    }
  }
}

resource taskHub 'Microsoft.DurableTask/schedulers/taskHubs@2025-11-01' = {
  parent: scheduler
  name: taskHubName
}

resource appDurableTaskDataContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(scheduler.id, identityPrincipalId, durableTaskDataContributor)
  scope: scheduler
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', durableTaskDataContributor)
    principalId: identityPrincipalId
    principalType: 'ServicePrincipal'
  }
}

resource userDurableTaskDataContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(userPrincipalId)) {
  name: guid(scheduler.id, userPrincipalId, durableTaskDataContributor)
  scope: scheduler
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', durableTaskDataContributor)
    principalId: userPrincipalId
    principalType: userPrincipalType
  }
}

output name string = scheduler.name
output endpoint string = scheduler.properties.endpoint
output taskHubName string = taskHub.name
