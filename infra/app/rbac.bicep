// Data-plane role assignments. Each one is scoped to the resource it is about, for the app's
// user-assigned identity and (when userPrincipalId is set) for the deploying user, so that the app can
// also be run locally against these resources with `az login` / AzureCliCredential.
param storageAccountName string
param appInsightsName string
param openAiAccountName string
param identityPrincipalId string
param userPrincipalId string = ''
@allowed([
  'User'
  'ServicePrincipal'
])
param userPrincipalType string = 'User'

var storageBlobDataOwner = 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
var storageQueueDataContributor = '974c5e8b-45b9-4653-ba55-5f855dd0fb88'
var storageTableDataContributor = '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
var monitoringMetricsPublisher = '3913510d-42f4-4e42-8a64-420c390055eb'
var cognitiveServicesOpenAIUser = '5e0bd9bd-7b93-4f28-af87-19fc36ad61bd'
var grantUser = !empty(userPrincipalId)

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: appInsightsName
}

resource openAi 'Microsoft.CognitiveServices/accounts@2024-10-01' existing = {
  name: openAiAccountName
}

// --- the app's managed identity ---

resource appBlobDataOwner 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, identityPrincipalId, storageBlobDataOwner)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageBlobDataOwner)
    principalId: identityPrincipalId
    principalType: 'ServicePrincipal'
  }
}

resource appQueueDataContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, identityPrincipalId, storageQueueDataContributor)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageQueueDataContributor)
    principalId: identityPrincipalId
    principalType: 'ServicePrincipal'
  }
}

resource appTableDataContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, identityPrincipalId, storageTableDataContributor)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageTableDataContributor)
    principalId: identityPrincipalId
    principalType: 'ServicePrincipal'
  }
}

resource appMetricsPublisher 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(appInsights.id, identityPrincipalId, monitoringMetricsPublisher)
  scope: appInsights
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', monitoringMetricsPublisher)
    principalId: identityPrincipalId
    principalType: 'ServicePrincipal'
  }
}

resource appOpenAIUser 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(openAi.id, identityPrincipalId, cognitiveServicesOpenAIUser)
  scope: openAi
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', cognitiveServicesOpenAIUser)
    principalId: identityPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// --- the deploying user (optional) ---

resource userBlobDataOwner 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (grantUser) {
  name: guid(storage.id, userPrincipalId, storageBlobDataOwner)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageBlobDataOwner)
    principalId: userPrincipalId
    principalType: userPrincipalType
  }
}

resource userQueueDataContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (grantUser) {
  name: guid(storage.id, userPrincipalId, storageQueueDataContributor)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageQueueDataContributor)
    principalId: userPrincipalId
    principalType: userPrincipalType
  }
}

resource userTableDataContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (grantUser) {
  name: guid(storage.id, userPrincipalId, storageTableDataContributor)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageTableDataContributor)
    principalId: userPrincipalId
    principalType: userPrincipalType
  }
}

resource userMetricsPublisher 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (grantUser) {
  name: guid(appInsights.id, userPrincipalId, monitoringMetricsPublisher)
  scope: appInsights
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', monitoringMetricsPublisher)
    principalId: userPrincipalId
    principalType: userPrincipalType
  }
}

resource userOpenAIUser 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (grantUser) {
  name: guid(openAi.id, userPrincipalId, cognitiveServicesOpenAIUser)
  scope: openAi
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', cognitiveServicesOpenAIUser)
    principalId: userPrincipalId
    principalType: userPrincipalType
  }
}
